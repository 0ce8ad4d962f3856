import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class NeuronPrunerTests: XCTestCase {
    /// The removed neurons, masked instead: rows of W_l and columns of W_{l+1}.
    private func masked(_ net: Chain, keeping kept: [[Int]]) throws -> Chain {
        let copy = net.copy()
        for (l, k) in kept.enumerated() {
            let keep = Set(k)
            var m0 = copy.layers[l].maskOrOnes, m1 = copy.layers[l + 1].maskOrOnes
            for i in 0..<m0.rows where !keep.contains(i) {
                for j in 0..<m0.columns { m0[i, j] = 0 }
                for r in 0..<m1.rows { m1[r, i] = 0 }
            }
            try copy.layers[l].setMask(m0)
            try copy.layers[l + 1].setMask(m1)
        }
        return copy
    }

    func testRemovingNeuronsGivesTheMaskedNetworksOutputs() throws {
        var rng = SeededRandom(seed: 4)
        let x = randomMatrix(9, 13, rng: &rng)
        for activation in [Activation.relu, .tanh, .sigmoid] {
            let net = try Chain(sizes: [13, 11, 7, 5], hidden: activation, seed: 2)
            try Pruner(saliency: .random(seed: 1), scope: .global, includeBiases: true).prune(net, to: 0.3)   // masks survive removal
            let reference = net.copy()
            let step = try NeuronPruner(criterion: .l2).prune(net, to: 0.5)
            XCTAssertEqual(net.sizes, [13, 5, 3, 5])   // 11 − round(5.5) = 5, 7 − round(3.5) = 3
            for (l, layer) in net.layers.enumerated() {
                let rows = l < step.kept.count ? step.kept[l] : Array(0..<layer.outputSize)
                XCTAssertEqual(layer.biasMaskOrOnes, rows.map { reference.layers[l].biasMaskOrOnes[$0] }, "bias masks follow their neurons")
            }
            let expected = try masked(reference, keeping: step.kept)(x)
            assertClose(net(x).storage, expected.storage, relative: 1e-5, "\(activation)")
        }
    }

    func testScoresAndTieBreak() throws {
        let net = try Chain([try Dense(weight: Matrix([[1, -1], [3, 0], [0, 2], [-2, 0]]), bias: [0, 0, 0, 0], activation: .relu),
                         try Dense(weight: Matrix(rows: 1, columns: 4, repeating: 1), bias: [0])])
        XCTAssertEqual(try NeuronPruner(criterion: .l1).scores(net), [[2, 3, 2, 2]])
        // L1 ties between neurons 0, 2, 3: remove half (2) → the lowest indices 0 and 2 go.
        let step = try NeuronPruner(criterion: .l1).prune(net, to: 0.5)
        XCTAssertEqual(step.kept, [[1, 3]])
        XCTAssertEqual(net.layers[1].weight.columns, 2)
    }

    func testActivationCriterionAndIterativeFractionsOfTheOriginal() throws {
        var rng = SeededRandom(seed: 5)
        let data = try LabeledData(images: randomMatrix(50, 8, rng: &rng), labels: [Int32](repeating: 0, count: 50))
        let net = try Chain(sizes: [8, 20, 10, 3], seed: 3)
        let pruner = NeuronPruner(criterion: .activation(data, sampleCount: 50))
        try pruner.prune(net, to: 0.25, originalSizes: [20, 10])
        XCTAssertEqual(net.sizes, [8, 15, 7, 3])   // 10 − round(2.5) = 7 (ties round away from zero)
        try pruner.prune(net, to: 0.5, originalSizes: [20, 10])
        XCTAssertEqual(net.sizes, [8, 10, 5, 3])
        assertThrowsTopiaryError(.invalidOption, try pruner.prune(net, to: 2))
    }

    // MARK: Global scope

    /// 4 → 3 → 3 → 2. Layer 0 (fan-in 4) rows have mean |w| 0.5, 1, 0.4 (L1 sums 2, 4, 1.6); layer 1
    /// (fan-in 3) rows have mean |w| 0.6, 2, 0.7 (sums 1.8, 6, 2.1). Every row has one magnitude, so
    /// the RMS (L2 / √fan-in) equals the mean |w|.
    private func fanInNetwork(scale: Float = 1) throws -> Chain {
        let w0 = Matrix([[0.5, -0.5, 0.5, -0.5], [1, 1, 1, 1], [0.4, 0.4, 0.4, 0.4]])
        return try Chain([try Dense(weight: Matrix(rows: 3, columns: 4, storage: w0.storage.map { $0 * scale }),
                                    bias: [0.1, 0.2, 0.3], activation: .relu),
                      try Dense(weight: Matrix([[0.6, 0.6, -0.6], [2, 2, 2], [0.7, 0.7, 0.7]]), bias: [0, 0.1, -0.1], activation: .relu),
                      try Dense(weight: Matrix([[1, -1, 0.5], [0.25, 1, -2]]), bias: [0, 0])])
    }

    func testGlobalScopeRanksAllHiddenNeuronsByComparableScores() throws {
        for criterion in [NeuronCriterion.l1, .l2] {
            let net = try fanInNetwork()
            let pruner = NeuronPruner(criterion: criterion, scope: .global)
            let comparable = try pruner.comparableScores(net)
            assertClose(comparable[0], [0.5, 1, 0.4], relative: 1e-6)
            assertClose(comparable[1], [0.6, 2, 0.7], relative: 1e-6)
            // 6 hidden neurons, a third: round(2) go, the two lowest means 0.4 and 0.5, both in layer 0.
            // (Raw L1 sums would take 1.6 and 1.8, one per layer, as the layerwise scope does.)
            let step = try pruner.prune(net, to: 1.0 / 3)
            XCTAssertEqual(step.kept, [[1], [0, 1, 2]], "\(criterion.name)")
            XCTAssertEqual(net.sizes, [4, 1, 3, 2])
        }
        let layerwise = try fanInNetwork()
        XCTAssertEqual(try NeuronPruner(criterion: .l1).prune(layerwise, to: 1.0 / 3).kept, [[0, 1], [1, 2]])
    }

    func testGlobalScopeKeepsAtLeastOneNeuronPerLayer() throws {
        // Layer 0 scaled by 0.01: its three neurons are the lowest; half of 6 = 3 go, but layer 0's
        // last (neuron 1) is skipped for the next lowest, neuron 0 of layer 1.
        let small = try fanInNetwork(scale: 0.01)
        let step = try NeuronPruner(criterion: .l1, scope: .global).prune(small, to: 0.5)
        XCTAssertEqual(step.kept, [[1], [1, 2]])
        // 0.9 asks for round(5.4) = 5, but 6 neurons in 2 layers allow only 4.
        let net = try fanInNetwork()
        XCTAssertEqual(try NeuronPruner(criterion: .l2, scope: .global).prune(net, to: 0.9).kept, [[1], [1]])
        XCTAssertEqual(try NeuronPruner(criterion: .l2, scope: .global).prune(fanInNetwork(), to: 1).kept, [[1], [1]])
    }

    func testGlobalScopeRemovesExactlyRoundedFractionOfAllHiddenNeurons() throws {
        var rng = SeededRandom(seed: 5)
        let data = try LabeledData(images: randomMatrix(40, 8, rng: &rng), labels: [Int32](repeating: 0, count: 40))
        for criterion in [NeuronCriterion.l1, .l2, .activation(data, sampleCount: 40)] {
            for f in [0.0, 0.1, 0.25, 0.5, 0.77, 0.9] {
                let net = try Chain(sizes: [8, 20, 10, 3], seed: 3)
                try NeuronPruner(criterion: criterion, scope: .global).prune(net, to: f)
                XCTAssertEqual(net.sizes[1] + net.sizes[2], 30 - Int((f * 30).rounded()), "\(criterion.name) \(f)")
                XCTAssertEqual([net.sizes[0], net.sizes[3]], [8, 3])
            }
            // Iterative: fractions of the original 30, whatever the earlier step left.
            let net = try Chain(sizes: [8, 20, 10, 3], seed: 3)
            let pruner = NeuronPruner(criterion: criterion, scope: .global)
            try pruner.prune(net, to: 0.25, originalSizes: [20, 10])
            XCTAssertEqual(net.sizes[1] + net.sizes[2], 22)
            try pruner.prune(net, to: 0.6, originalSizes: [20, 10])
            XCTAssertEqual(net.sizes[1] + net.sizes[2], 12)
            try pruner.prune(net, to: 0.5, originalSizes: [20, 10])   // below the current: nothing more goes
            XCTAssertEqual(net.sizes[1] + net.sizes[2], 12)
        }
    }

    func testGlobalRemovalGivesTheMaskedNetworksOutputs() throws {
        var rng = SeededRandom(seed: 6)
        let x = randomMatrix(9, 13, rng: &rng)
        for activation in [Activation.relu, .tanh, .sigmoid] {
            let net = try Chain(sizes: [13, 11, 7, 5], hidden: activation, seed: 4)
            let reference = net.copy()
            let step = try NeuronPruner(criterion: .l2, scope: .global).prune(net, to: 0.5)
            XCTAssertEqual(net.sizes[1] + net.sizes[2], 18 - 9)
            let expected = try masked(reference, keeping: step.kept)(x)
            assertClose(net(x).storage, expected.storage, relative: 1e-5, "\(activation)")
        }
    }

    func testPerLayerFractionsNeedTheLayerwiseScope() throws {
        let net = try Chain(sizes: [8, 6, 4, 2], seed: 0)
        assertThrowsTopiaryError(.invalidOption,
                                 try NeuronPruner(criterion: .l1, layerFractions: [0.5, 0.5], scope: .global).prune(net, to: 0.5))
        XCTAssertEqual(net.sizes, [8, 6, 4, 2])
    }

    /// Neurons take the weight pruner's scope type, but only its layerwise and global allocations.
    func testScopesOtherThanLayerwiseOrGlobalAreRefused() throws {
        let net = try Chain(sizes: [8, 6, 4, 2], seed: 0)
        for scope in [PruningScope.perLayer([0.5, 0.5, 0]), .allocated(name: "any") { _ in [0.5, 0.5, 0] },
                      PruningScope.layerwise.protecting(0), PruningScope.global.capping(layer: 1, at: 0.5)] {
            let error = assertThrowsTopiaryError(.invalidOption, try NeuronPruner(criterion: .l1, scope: scope).prune(net, to: 0.5))
            XCTAssert(error?.message.contains("neuron pruning") ?? false, error?.message ?? "")
        }
        XCTAssertEqual(net.sizes, [8, 6, 4, 2])
        XCTAssertEqual(try NeuronPruner(criterion: .l1, scope: .layerwise).prune(net, to: 0.5).sizesAfter, [8, 3, 2, 2])
    }
}
