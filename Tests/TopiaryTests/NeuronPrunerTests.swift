import XCTest
@testable import Topiary

final class NeuronPrunerTests: XCTestCase {
    /// The removed neurons, masked instead: rows of W_l and columns of W_{l+1}.
    private func masked(_ net: Chain, keeping kept: [[Int]]) -> Chain {
        let copy = net.copy()
        for (l, k) in kept.enumerated() {
            let keep = Set(k)
            var m0 = copy.prunableLayers[l].mask, m1 = copy.prunableLayers[l + 1].mask
            for i in 0..<m0.rows where !keep.contains(i) {
                for j in 0..<m0.columns { m0[i, j] = 0 }
                for r in 0..<m1.rows { m1[r, i] = 0 }
            }
            copy.prunableLayers[l].setMask(m0)
            copy.prunableLayers[l + 1].setMask(m1)
        }
        return copy
    }

    func testRemovingNeuronsGivesTheMaskedNetworksOutputs() throws {
        var rng = SeededRandom(seed: 4)
        let x = randomMatrix(9, 13, rng: &rng)
        for activation in [Activation.relu, .tanh, .sigmoid] {
            let net = Chain(sizes: [13, 11, 7, 5], hidden: activation, seed: 2)
            try Pruner(saliency: .random(seed: 1), scope: .global, includeBiases: true).prune(net, to: 0.3)   // masks survive removal
            let reference = net.copy()
            let step = try NeuronPruner(criterion: .l2).prune(net, to: 0.5)
            XCTAssertEqual(net.sizes, [13, 5, 3, 5])   // 11 − round(5.5) = 5, 7 − round(3.5) = 3
            for (l, layer) in net.prunableLayers.enumerated() {
                let rows = l < step.kept.count ? step.kept[l] : Array(0..<layer.outputSize)
                XCTAssertEqual(layer.biasMask, rows.map { reference.prunableLayers[l].biasMask[$0] }, "bias masks follow their neurons")
            }
            let expected = masked(reference, keeping: step.kept)(x)
            assertClose(net(x).storage, expected.storage, relative: 1e-5, "\(activation)")
        }
    }

    func testScoresAndTieBreak() throws {
        let net = Chain([PrunableDense(weight: Matrix([[1, -1], [3, 0], [0, 2], [-2, 0]]), bias: [0, 0, 0, 0], activation: .relu),
                         PrunableDense(weight: Matrix(rows: 1, columns: 4, repeating: 1), bias: [0])])
        XCTAssertEqual(try NeuronPruner(criterion: .l1).scores(net), [[2, 3, 2, 2]])
        // L1 ties between neurons 0, 2, 3: remove half (2) → the lowest indices 0 and 2 go.
        let step = try NeuronPruner(criterion: .l1).prune(net, to: 0.5)
        XCTAssertEqual(step.kept, [[1, 3]])
        XCTAssertEqual(net.layers[1].weight.columns, 2)
    }

    func testActivationCriterionAndIterativeFractionsOfTheOriginal() throws {
        var rng = SeededRandom(seed: 5)
        let data = LabeledData(images: randomMatrix(50, 8, rng: &rng), labels: [Int32](repeating: 0, count: 50))
        let net = Chain(sizes: [8, 20, 10, 3], seed: 3)
        let pruner = NeuronPruner(criterion: .activation(data, sampleCount: 50))
        try pruner.prune(net, to: 0.25, originalSizes: [20, 10])
        XCTAssertEqual(net.sizes, [8, 15, 7, 3])   // 10 − round(2.5) = 7 (ties round away from zero)
        try pruner.prune(net, to: 0.5, originalSizes: [20, 10])
        XCTAssertEqual(net.sizes, [8, 10, 5, 3])
        assertThrowsTopiaryError(.invalidOption, try pruner.prune(net, to: 2))
    }
}
