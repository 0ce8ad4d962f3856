import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class PrunerTests: XCTestCase {
    /// A 2-layer network with hand-set weights: layer 0 is 2×3 = [1 2 3; 4 5 6], layer 1 is 1×2 = [-0.5 10].
    private func handBuilt() throws -> Chain {
        try Chain([try Dense(weight: Matrix([[1, 2, 3], [4, 5, 6]]), bias: [0, 0], activation: .relu),
               try Dense(weight: Matrix([[-0.5, 10]]), bias: [0])])
    }

    private func weights(_ net: Chain) -> [[Float]] { net.layers.map(\.weight.storage) }

    func testGlobalMagnitudeHasTheKnownAnswer() throws {
        let net = try handBuilt()
        // 8 weights, 50% → round(4) pruned: |−0.5|, 1, 2, 3.
        let step = try Pruner(saliency: .magnitude, scope: .global).prune(net, to: 0.5)
        XCTAssertEqual(weights(net), [[0, 0, 0, 4, 5, 6], [0, 10]])
        XCTAssertEqual(step.layerPruned, [3, 1])
        XCTAssertEqual(step.newlyPruned, [3, 1])
        XCTAssertEqual(step.sparsity, 0.5)
    }

    func testLayerwiseMagnitudeHasTheKnownAnswer() throws {
        let net = try handBuilt()
        // Layer 0: round(0.5·6) = 3 pruned (1, 2, 3); layer 1: round(0.5·2) = 1 pruned (−0.5).
        try Pruner(saliency: .magnitude, scope: .layerwise).prune(net, to: 0.5)
        XCTAssertEqual(weights(net), [[0, 0, 0, 4, 5, 6], [0, 10]])
        let net2 = try handBuilt()
        // 0.4: layer 0 round(2.4) = 2 (1, 2), layer 1 round(0.8) = 1.
        try Pruner(saliency: .magnitude, scope: .layerwise).prune(net2, to: 0.4)
        XCTAssertEqual(weights(net2), [[0, 0, 3, 4, 5, 6], [0, 10]])
    }

    func testTiesGoToLowerLayerThenLowerIndex() throws {
        let net = try Chain([try Dense(weight: Matrix([[1, 1], [1, 1]]), bias: [0, 0]),
                         try Dense(weight: Matrix([[1, 1]]), bias: [0])])
        try Pruner(saliency: .magnitude, scope: .global).prune(net, to: 0.5)   // 3 of 6, all equal
        XCTAssertEqual(weights(net), [[0, 0, 0, 1], [1, 1]])
        let net2 = try Chain([try Dense(weight: Matrix([[2, 1, 1, 3]]), bias: [0])])
        try Pruner(saliency: .magnitude, scope: .layerwise).prune(net2, to: 0.25)
        XCTAssertEqual(weights(net2), [[2, 0, 1, 3]])
    }

    func testExactCountsOnRandomNetworksForBothScopes() throws {
        for target in [0.0, 0.1, 0.333, 0.5, 0.9, 0.97, 1.0] {
            let net = try Chain(sizes: [37, 13, 7, 3], seed: 5)
            let n = net.layers.map(\.weight.count)
            try Pruner(saliency: .magnitude, scope: .global).prune(net, to: target)
            let total = n.reduce(0, +)
            XCTAssertEqual(net.nonzeroWeightCount, total - Int((target * Double(total)).rounded()), "global \(target)")
            let net2 = try Chain(sizes: [37, 13, 7, 3], seed: 5)
            try Pruner(saliency: .random(seed: 2), scope: .layerwise).prune(net2, to: target)
            for (layer, count) in zip(net2.layers, n) {
                XCTAssertEqual(layer.weight.nonzeroCount, count - Int((target * Double(count)).rounded()), "layerwise \(target)")
                XCTAssertEqual(layer.keptCount, layer.weight.nonzeroCount)
            }
        }
    }

    func testMasksNeverGrowAndTargetsBelowCurrentPruneNothing() throws {
        let net = try Chain(sizes: [20, 10, 5], seed: 3)
        let pruner = Pruner(saliency: .random(seed: 9), scope: .global)
        var previous = net.layers.map(\.maskOrOnes)
        for target in [0.3, 0.5, 0.5, 0.2, 0.8, 0.95] {
            try pruner.prune(net, to: target)
            let masks = net.layers.map(\.maskOrOnes)
            for (old, new) in zip(previous, masks) {
                for i in 0..<old.count where old.storage[i] == 0 { XCTAssertEqual(new.storage[i], 0) }
            }
            previous = masks
        }
        // 250 weights: round(0.95 · 250) = round(237.5) = 238 pruned (0.2 after 0.5 pruned nothing).
        XCTAssertEqual(net.nonzeroWeightCount, 12)
    }

    func testGlobalIteratedPruningReachesTheSameCountAsOneShot() throws {
        let net = try Chain(sizes: [30, 20, 10], seed: 4)
        for t in [0.2, 0.36, 0.488, 0.9] { try Pruner(scope: .global).prune(net, to: t) }
        XCTAssertEqual(net.nonzeroWeightCount, 800 - 720)
    }

    func testProtectedAndCappedLayers() throws {
        let net = try Chain(sizes: [20, 10, 4], seed: 1)   // 200 + 40 weights
        try Pruner(scope: PruningScope.global.capping(layer: 1, at: 0.5)).prune(net, to: 0.9)
        let layers = net.layers
        XCTAssertLessThanOrEqual(layers[1].sparsity, 0.5)
        XCTAssertEqual(net.nonzeroWeightCount, 240 - 216, "global target still exact overall")
        XCTAssertEqual(layers[1].weight.count - layers[1].keptCount, 20, "capped layer held at its cap")

        let net2 = try Chain(sizes: [20, 10, 4], seed: 1)
        try Pruner(scope: PruningScope.layerwise.protecting(1)).prune(net2, to: 0.5)
        XCTAssertEqual(net2.layers[1].keptCount, 40)
        XCTAssertEqual(net2.layers[0].keptCount, 100)

        let net3 = try Chain(sizes: [20, 10, 4], seed: 1)
        assertThrowsTopiaryError(.invalidOption, try Pruner(scope: PruningScope.global.protecting(0)).prune(net3, to: 0.5))
        assertThrowsTopiaryError(.invalidOption, try Pruner(scope: .global).prune(net3, to: 1.5))
        assertThrowsTopiaryError(.invalidOption, try Pruner(scope: PruningScope.global.protecting(7)).prune(net3, to: 0.5))
    }

    func testPerLayerProfileLandsOnItsTargets() throws {
        let net = try Chain(sizes: [20, 10, 4], seed: 1)
        let scope = PruningScope.perLayer([0.9, 0.5])
        let implied = try XCTUnwrap(scope.impliedSparsity(layerSizes: [200, 40]))
        XCTAssertEqual(implied, (180.0 + 20) / 240, accuracy: 1e-12)
        try Pruner(scope: scope).prune(net, to: implied)
        XCTAssertEqual(net.layers.map(\.keptCount), [20, 20])
        assertThrowsTopiaryError(.invalidOption, try Pruner(scope: .perLayer([0.5])).prune(net, to: 0.5))
    }

    func testCustomSaliencyOfWrongShapeThrows() throws {
        let net = try Chain(sizes: [4, 3, 2], seed: 0)
        let bad = Saliency(name: "bad") { _ in [[1, 2]] }
        assertThrowsTopiaryError(.invalidShape, try Pruner(saliency: bad).prune(net, to: 0.5))
    }

    func testTaylorSaliencyIsWeightTimesGradientAndLeavesWeightsAlone() throws {
        var rng = SeededRandom(seed: 3)
        let images = randomMatrix(64, 6, rng: &rng)
        let data = try LabeledData(images: images, labels: (0..<64).map { Int32($0 % 3) })
        let net = try Chain(sizes: [6, 5, 3], seed: 2)
        let before = net.layers.map(\.weight)
        let scores = try Saliency.taylor(data: data, batchCount: 1, batchSize: 64).scores(for: net)
        XCTAssertEqual(net.layers.map(\.weight), before)
        // One batch of all 64 examples: the score is |w · ∂L/∂w| of the full-batch gradient.
        var workspace = Chain.Workspace(for: net, batchCapacity: 64)
        var batches = Batches(data, batchSize: 64)
        batches.shuffle(seed: 0, epoch: 0)
        batches.withBatch(0) { x, labels, n in
            let y = net.forward(x, batch: n, workspace: &workspace)
            Loss.softmaxCrossEntropy.evaluate(output: y, labels: labels, batch: n, classes: 3, gradient: workspace.outputGradient)
            net.backward(x, batch: n, workspace: &workspace)
        }
        for (l, layer) in net.layers.enumerated() {
            let expected = zip(layer.weight.storage, layer.weightGradient.storage).map { abs($0 * $1) }
            assertClose(scores[l], expected, relative: 1e-6)
        }
    }

    /// One global magnitude step over LeNet-300-100 (266,200 weights) prunes exactly 90%. Its
    /// speed (the issue asks ≤ 2 ms) is measured by `PruningBenchmark`, not by a unit test.
    func testGlobalStepOnLeNetPrunesExactlyTheTarget() throws {
        let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
        let step = try Pruner(saliency: .magnitude, scope: .global).prune(net, to: 0.9)
        XCTAssertEqual(net.nonzeroWeightCount, 266_200 - 239_580)
        XCTAssertEqual(step.layerPruned.reduce(0, +), 239_580)
        XCTAssertEqual(step.newlyPruned, step.layerPruned)
    }

    // MARK: Biases

    /// `handBuilt()` with non-zero biases: layer 0 b = [0.5, 7], layer 1 b = [−2.5].
    private func handBuiltWithBiases() throws -> Chain {
        try Chain([try Dense(weight: Matrix([[1, 2, 3], [4, 5, 6]]), bias: [0.5, 7], activation: .relu),
               try Dense(weight: Matrix([[-0.5, 10]]), bias: [-2.5])])
    }

    func testBiasesAreNotPrunedByDefault() throws {
        let net = try handBuiltWithBiases()
        let step = try Pruner(saliency: .magnitude, scope: .global).prune(net, to: 0.5)
        XCTAssertEqual(weights(net), [[0, 0, 0, 4, 5, 6], [0, 10]])
        XCTAssertEqual(net.layers.map(\.bias), [[0.5, 7], [-2.5]])
        XCTAssertEqual(step.layerWeights, [6, 2])
        XCTAssertFalse(step.includesBiases)
    }

    func testGlobalMagnitudeWithBiasesHasTheKnownAnswer() throws {
        let net = try handBuiltWithBiases()
        // 11 parameters, 50% → round(5.5) = 6 pruned: 0.5 (bias 0 of layer 0, position 6) before −0.5
        // (weight 0 of layer 1, position 8) on the tie, then 1, 2, −2.5, 3.
        let step = try Pruner(saliency: .magnitude, scope: .global, includeBiases: true).prune(net, to: 0.5)
        XCTAssertEqual(weights(net), [[0, 0, 0, 4, 5, 6], [0, 10]])
        XCTAssertEqual(net.layers.map(\.bias), [[0, 7], [0]])
        XCTAssertEqual(net.layers.map(\.biasMaskOrOnes), [[0, 1], [0]])
        XCTAssertEqual(step.layerWeights, [8, 3])
        XCTAssertEqual(step.layerPruned, [4, 2])
        XCTAssertEqual(step.sparsity, 6.0 / 11.0)
        XCTAssertTrue(step.includesBiases)
        XCTAssertEqual(net.nonzeroParameterCount, 11 - 6)
        XCTAssertEqual(net.parameterSparsity, 6.0 / 11.0)
    }

    func testLayerwiseMagnitudeWithBiasesHasTheKnownAnswer() throws {
        let net = try handBuiltWithBiases()
        // 0.25: layer 0 (8 parameters) round(2) = 2 pruned: 0.5, 1; layer 1 (3) round(0.75) = 1: −0.5.
        try Pruner(saliency: .magnitude, scope: .layerwise, includeBiases: true).prune(net, to: 0.25)
        XCTAssertEqual(weights(net), [[0, 2, 3, 4, 5, 6], [0, 10]])
        XCTAssertEqual(net.layers.map(\.bias), [[0, 7], [-2.5]])
    }

    func testExactCountsWithBiasesForEverySaliencyAndScope() throws {
        var rng = SeededRandom(seed: 6)
        let data = try LabeledData(images: randomMatrix(64, 37, rng: &rng), labels: (0..<64).map { Int32($0 % 3) })
        let saliencies: [Saliency] = [.magnitude, .random(seed: 2), .taylor(data: data, batchCount: 2, batchSize: 32),
                                      Saliency(name: "p²", weights: { net in net.layers.map { $0.weight.storage.map { $0 * $0 } } },
                                               biases: { net in net.layers.map { $0.bias.map { $0 * $0 } } })]
        for saliency in saliencies {
            for target in [0.0, 0.1, 0.333, 0.5, 0.9, 0.97, 1.0] {
                let net = try Chain(sizes: [37, 13, 7, 3], seed: 5)
                let n = net.parameterCount   // 481 + 13 + 91 + 7 + 21 + 3
                XCTAssertEqual(n, 616)
                try Pruner(saliency: saliency, scope: .global, includeBiases: true).prune(net, to: target)
                XCTAssertEqual(net.nonzeroParameterCount, n - Int((target * Double(n)).rounded()), "global \(saliency.name) \(target)")
                let net2 = try Chain(sizes: [37, 13, 7, 3], seed: 5)
                try Pruner(saliency: saliency, scope: .layerwise, includeBiases: true).prune(net2, to: target)
                for layer in net2.layers {
                    let count = layer.parameterCount
                    XCTAssertEqual(layer.weight.nonzeroCount + layer.nonzeroBiasCount, count - Int((target * Double(count)).rounded()),
                                   "layerwise \(saliency.name) \(target)")
                    XCTAssertEqual(layer.keptBiasCount, layer.nonzeroBiasCount)
                }
            }
        }
    }

    /// Over 16,384 candidates the selection samples a window; the answer must still be the exact
    /// `m` lowest (|value|, position) keys, biases included.
    func testGlobalMagnitudeWithBiasesMatchesTheSortingReferenceOnALargeNetwork() throws {
        let net = try Chain(sizes: [200, 100, 10], seed: 9)   // 21,110 parameters
        // Repeated magnitudes make ties that the position must break.
        for layer in net.layers {
            for i in 0..<layer.weight.count { layer.weight.storage[i] = (layer.weight.storage[i] * 64).rounded() / 64 }
            layer.bias = layer.bias.map { ($0 * 64).rounded() / 64 }
        }
        var keys: [UInt64] = []
        var position = 0
        for layer in net.layers {
            for v in layer.weight.storage + layer.bias {
                keys.append(PruningSelection.key(saliency: abs(v), position: position))
                position += 1
            }
        }
        let m = Int((0.8 * Double(keys.count)).rounded())
        let threshold = PruningSelection.kthSmallestBySorting(keys, k: m - 1)
        try Pruner(saliency: .magnitude, scope: .global, includeBiases: true).prune(net, to: 0.8)
        var masks: [Float] = []
        for layer in net.layers { masks += layer.maskOrOnes.storage + layer.biasMaskOrOnes }
        XCTAssertEqual(masks, keys.map { $0 <= threshold ? 0 : 1 })
    }

    func testBiasMasksNeverGrow() throws {
        let net = try Chain(sizes: [20, 10, 5], seed: 3)
        let pruner = Pruner(saliency: .random(seed: 9), scope: .global, includeBiases: true)
        var previous = net.layers.map(\.biasMaskOrOnes)
        var prunedBiases = 0
        for target in [0.3, 0.5, 0.5, 0.2, 0.8, 0.95] {
            try pruner.prune(net, to: target)
            let masks = net.layers.map(\.biasMaskOrOnes)
            for (old, new) in zip(previous, masks) {
                for j in old.indices where old[j] == 0 { XCTAssertEqual(new[j], 0) }
            }
            previous = masks
            prunedBiases = masks.joined().filter { $0 == 0 }.count
        }
        XCTAssertGreaterThan(prunedBiases, 0, "the random control prunes some biases")
        // 265 parameters: round(0.95 · 265) = round(251.75) = 252 pruned.
        XCTAssertEqual(net.nonzeroParameterCount, 13)
    }

    func testBiasesNeedASaliencyThatScoresThem() throws {
        let net = try Chain(sizes: [4, 3, 2], seed: 0)
        let weightsOnly = Saliency(name: "w²") { net in net.layers.map { $0.weight.storage.map { $0 * $0 } } }
        XCTAssertFalse(weightsOnly.scoresBiases)
        assertThrowsTopiaryError(.invalidOption, try Pruner(saliency: weightsOnly, includeBiases: true).prune(net, to: 0.5))
        XCTAssertEqual(net.nonzeroParameterCount, net.parameterCount, "nothing pruned")
        let badBiases = Saliency(name: "bad", weights: { net in net.layers.map { $0.weight.storage } },
                                 biases: { _ in [[1], [2]] })
        assertThrowsTopiaryError(.invalidShape, try Pruner(saliency: badBiases, includeBiases: true).prune(net, to: 0.5))
    }

    func testTaylorBiasScoresAreBiasTimesGradient() throws {
        var rng = SeededRandom(seed: 3)
        let data = try LabeledData(images: randomMatrix(64, 6, rng: &rng), labels: (0..<64).map { Int32($0 % 3) })
        let net = try Chain(sizes: [6, 5, 3], seed: 2)
        let taylor = Saliency.taylor(data: data, batchCount: 1, batchSize: 64)
        let weightScores = try taylor.scores(for: net)
        let biasScores = try taylor.biasScores(for: net)
        XCTAssertEqual(try taylor.scores(for: net, includingBiases: true).weights, weightScores)
        // The last backward pass was the saliency's single full batch.
        for (l, layer) in net.layers.enumerated() {
            assertClose(biasScores[l], zip(layer.bias, layer.biasGradient).map { abs($0 * $1) }, relative: 1e-6)
        }
    }
}
