import XCTest
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) @testable import Topiary

final class SensitivityAnalysisTests: XCTestCase {
    /// Hand-made curves: layer 0 (900 weights) is robust, layer 1 (90 weights) is sensitive.
    private let curves = SensitivityCurves(
        baselineLoss: 0.3, baselineAccuracy: 0.9,
        layers: [
            .init(layer: 0, weights: 900, points: [.init(sparsity: 0.5, loss: 0.3, accuracy: 0.9),
                                                   .init(sparsity: 0.9, loss: 0.31, accuracy: 0.898),
                                                   .init(sparsity: 0.99, loss: 0.5, accuracy: 0.85)]),
            .init(layer: 1, weights: 90, points: [.init(sparsity: 0.5, loss: 0.35, accuracy: 0.893),
                                                   .init(sparsity: 0.9, loss: 0.9, accuracy: 0.7),
                                                   .init(sparsity: 0.99, loss: 2.0, accuracy: 0.3)]),
        ])

    func testBudgetTargetsTakeTheLargestSparsityWithinTheDrop() throws {
        XCTAssertEqual(curves.targets(budget: 0.005), [0.9, 0])
        XCTAssertEqual(curves.targets(budget: 0.01), [0.9, 0.5])
        XCTAssertEqual(curves.targets(budget: 0.5), [0.99, 0.9])
    }

    func testAllocationReachesTheOverallSparsityPreferringRobustLayers() throws {
        let x = curves.allocation(overall: 0.8)
        XCTAssertEqual(900 * x[0] + 90 * x[1], 0.8 * 990, accuracy: 1e-6)
        XCTAssertGreaterThan(x[0], x[1])
        let scope = curves.allocationScope()
        let net = try Chain([try Dense(weight: Matrix(rows: 45, columns: 20, repeating: 1), bias: [Float](repeating: 0, count: 45)),
                         try Dense(weight: Matrix(rows: 2, columns: 45, repeating: 1), bias: [Float](repeating: 0, count: 2))])
        XCTAssertNoThrow(try Pruner(scope: scope).prune(net, to: 0.8))
        let pruned = net.layers.map { $0.weight.count - $0.keptCount }
        XCTAssertEqual(pruned[0], Int((x[0] * 900).rounded()))
        XCTAssertEqual(pruned[1], Int((x[1] * 90).rounded()))
    }

    /// With a budget: the per-layer profile of the budget targets, and the overall sparsity they
    /// imply (caps and protection applied) as the final target.
    func testScopeWithABudgetTargetsTheImpliedSparsity() throws {
        let s = try curves.scope(budget: 0.5, target: 0.3, layerSizes: [900, 90])
        XCTAssertEqual(s.layerTargets, [0.99, 0.9])
        XCTAssertEqual(s.target, (0.99 * 900 + 0.9 * 90) / 990, accuracy: 1e-12)
        guard case .perLayer(let profile) = s.scope.allocation else { return XCTFail("\(s.scope.name)") }
        XCTAssertEqual(profile, [0.99, 0.9])
        let capped = try curves.scope(budget: 0.5, target: 0.3, layerSizes: [900, 90], protectedLayers: [1], sparsityCaps: [0: 0.5])
        XCTAssertEqual(capped.target, 0.5 * 900 / 990, accuracy: 1e-12)
        XCTAssertEqual(capped.scope.protectedLayers, [1])
        XCTAssertEqual(capped.scope.sparsityCaps, [0: 0.5])
        // Every layer lands on its own target when pruned to the final target.
        let net = try Chain([try Dense(weight: Matrix(rows: 45, columns: 20, repeating: 1), bias: [Float](repeating: 0, count: 45)),
                             try Dense(weight: Matrix(rows: 2, columns: 45, repeating: 1), bias: [Float](repeating: 0, count: 2))])
        try Pruner(scope: s.scope).prune(net, to: s.target)
        XCTAssertEqual(net.layers.map { $0.weight.count - $0.keptCount }, [891, 81])
    }

    /// Without a budget: the allocation scope and its per-layer sparsities at the requested target.
    func testScopeWithoutABudgetAllocatesTheTarget() throws {
        let s = try curves.scope(budget: nil, target: 0.8, layerSizes: [900, 90], protectedLayers: [], sparsityCaps: [1: 0.7])
        XCTAssertEqual(s.target, 0.8)
        XCTAssertEqual(s.layerTargets, curves.allocation(overall: 0.8))
        XCTAssertEqual(s.scope.name, "sensitivity cap 1≤0.7")
        assertThrowsTopiaryError(.invalidOption, try curves.scope(budget: nil, target: 0.8, layerSizes: [900, 90, 10]))
        assertThrowsTopiaryError(.invalidOption, try curves.scope(budget: 0.01, target: 0.8, layerSizes: [900]))
    }

    func testRunMeasuresEachLayerAloneOnValidationAndLeavesTheNetwork() throws {
        var rng = SeededRandom(seed: 7)
        let images = randomMatrix(80, 6, rng: &rng)
        let val = try LabeledData(images: images, labels: (0..<80).map { Int32($0 % 3) })
        let net = try Chain(sizes: [6, 8, 3], seed: 1)
        let before = net.layers.map(\.weight)
        let result = try SensitivityAnalysis(sparsities: [0.5, 0, 1]).run(net, validation: val)
        XCTAssertEqual(net.layers.map(\.weight), before)
        XCTAssertEqual(result.layers.count, 2)
        XCTAssertEqual(result.layers[0].points.map(\.sparsity), [0, 0.5, 1])
        XCTAssertEqual(result.layers[0].points[0].accuracy, result.baselineAccuracy)
        XCTAssertEqual(result.baselineAccuracy, try net.evaluate(val).accuracy)
        XCTAssert(result.csv.hasPrefix("layer,weights,sparsity,val_loss,val_accuracy,accuracy_drop\n"))
        XCTAssertEqual(result.csv.split(separator: "\n").count, 7)
        assertThrowsTopiaryError(.invalidOption, try SensitivityAnalysis(sparsities: [2]).run(net, validation: val))
        assertThrowsTopiaryError(.invalidOption, try SensitivityAnalysis().run(net, validation: LabeledData(featureCount: 6)))
    }
}
