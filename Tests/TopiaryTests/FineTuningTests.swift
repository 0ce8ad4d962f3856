import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class FineTuningTests: XCTestCase {
    private func syntheticData(count: Int, features: Int = 12, classes: Int = 4, seed: UInt64) throws -> LabeledData {
        var rng = SeededRandom(seed: seed)
        let images = randomMatrix(count, features, rng: &rng)
        var labels = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            var best = 0
            for j in 1..<classes where images[i, j] > images[i, best] { best = j }
            labels[i] = Int32(best)
        }
        return try LabeledData(images: images, labels: labels)
    }

    func testRewindRestoresSavedValuesAtSurvivorsAndKeepsPrunedAtZero() throws {
        let net = try Chain(sizes: [12, 16, 4], seed: 1)
        let initial = WeightSnapshot(net, epoch: 0)
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.1, momentum: 0.9), batchSize: 32, seed: 1)
        try trainer.trainEpoch(syntheticData(count: 256, seed: 2))
        try Pruner(scope: .global).prune(net, to: 0.7)
        try FineTuningPolicy.rewind(initial).apply(to: net, step: 1)
        for (l, layer) in net.layers.enumerated() {
            for i in 0..<layer.weight.count {
                // Pruned weights are exactly zero (masking may leave −0.0, which equals 0).
                XCTAssertEqual(layer.weight.storage[i], layer.maskOrOnes.storage[i] == 0 ? 0 : initial.weights[l].storage[i])
            }
            XCTAssertEqual(layer.bias, initial.biases[l])
        }
        XCTAssertEqual(net.sparsity, 0.7, accuracy: 0.01)
    }

    func testReinitialiseDrawsFreshSurvivorsAndKeepsMasks() throws {
        let net = try Chain(sizes: [12, 16, 4], seed: 1)
        try Pruner(scope: .layerwise).prune(net, to: 0.5)
        let before = net.layers.map(\.weight)
        try FineTuningPolicy.reinitialize(seed: 3).apply(to: net, step: 1)
        for (layer, old) in zip(net.layers, before) {
            XCTAssertEqual(layer.weight.nonzeroCount, layer.keptCount)
            XCTAssertNotEqual(layer.weight, old)
            let bound = 1 / Float(layer.inputSize).squareRoot()
            XCTAssert(layer.weight.storage.allSatisfy { abs($0) <= bound })
        }
    }

    func testRewindAndReinitialiseKeepPrunedBiasesAtZero() throws {
        let net = try Chain(sizes: [12, 16, 4], seed: 1)
        let initial = WeightSnapshot(net, epoch: 0)
        try Pruner(scope: .global, includeBiases: true).prune(net, to: 0.6)
        let masks = net.layers.map(\.biasMaskOrOnes)
        XCTAssert(masks.joined().contains(0), "some biases are pruned")
        for policy in [FineTuningPolicy.rewind(initial), .reinitialize(seed: 2)] {
            try policy.apply(to: net, step: 1)
            for (l, layer) in net.layers.enumerated() {
                XCTAssertEqual(layer.biasMaskOrOnes, masks[l], policy.name)
                for j in layer.bias.indices {
                    if masks[l][j] == 0 {
                        XCTAssertEqual(layer.bias[j].bitPattern, Float(0).bitPattern, policy.name)
                    } else if case .rewind = policy {
                        XCTAssertEqual(layer.bias[j], initial.biases[l][j])
                    }
                }
            }
        }
    }

    func testRewindSnapshotOfWrongShapeThrows() throws {
        let snapshot = WeightSnapshot(try Chain(sizes: [12, 8, 4], seed: 0))
        assertThrowsTopiaryError(.invalidShape, try snapshot.rewind(Chain(sizes: [12, 16, 4], seed: 0)))
    }

    /// rewind:0 from a model file: the initialisation rebuilt from the recorded recipe is, bit for
    /// bit, the network `Chain(sizes:hidden:output:seed:)` started from.
    func testInitializationFromTheRecipeReproducesTheInitialWeightsBitForBit() throws {
        let recipe = TrainingRecipe(sizes: [12, 9, 6, 4], hiddenActivation: .tanh, optimizer: OptimizerSettings(learningRate: 0.1),
                                    epochs: 3, batchSize: 16, seed: 0xDEAD_BEEF_0123)
        let trained = try Chain(sizes: [12, 9, 6, 4], hidden: .tanh, output: .identity, seed: 0xDEAD_BEEF_0123)
        let initial = WeightSnapshot(trained, epoch: 0)
        try Trainer(network: trained, optimizer: SGD(learningRate: 0.1), batchSize: 16, seed: 1)
            .fit(argmaxDataset(train: 64, validation: 16, test: 16, seed: 2), epochs: 1)
        let dir = try TemporaryDirectory()
        try Model(network: trained, recipe: recipe).save(to: dir.file("m.safetensors"))
        let rebuilt = try WeightSnapshot.initialization(of: Model.load(from: dir.file("m.safetensors")))
        XCTAssertEqual(rebuilt.epoch, 0)
        XCTAssertEqual(rebuilt.sizes, [12, 9, 6, 4])
        XCTAssertEqual(rebuilt.weights.map { $0.storage.map(\.bitPattern) }, initial.weights.map { $0.storage.map(\.bitPattern) })
        XCTAssertEqual(rebuilt.biases.map { $0.map(\.bitPattern) }, initial.biases.map { $0.map(\.bitPattern) })
        XCTAssertNotEqual(rebuilt.weights, WeightSnapshot(trained).weights, "training moved the weights")
    }

    func testInitializationNeedsARecipe() throws {
        let error = assertThrowsTopiaryError(.invalidOption, try WeightSnapshot.initialization(of: Model(network: Chain(sizes: [4, 3], seed: 0))))
        XCTAssert(error?.message.contains("training recipe") ?? false, error?.message ?? "")
    }

    /// A file whose recorded recipe does not match its network is refused before a network of the
    /// recipe's (possibly enormous) sizes is built.
    func testInitializationRefusesARecipeOfOtherSizes() throws {
        let net = try Chain(sizes: [4, 3, 2], seed: 0)
        let recipe = TrainingRecipe(sizes: [4, 46_340, 46_340, 2], optimizer: OptimizerSettings(learningRate: 0.1),
                                    epochs: 1, batchSize: 8, seed: 0)
        XCTAssertThrowsError(try WeightSnapshot.initialization(of: Model(network: net, recipe: recipe))) { error in
            XCTAssertEqual((error as? TopiaryError)?.kind, .invalidShape)
        }
        let good = TrainingRecipe(sizes: [4, 3, 2], optimizer: OptimizerSettings(learningRate: 0.1), epochs: 1, batchSize: 8, seed: 0)
        XCTAssertEqual(try WeightSnapshot.initialization(of: Model(network: net, recipe: good)).weights, net.layers.map(\.weight))
    }

    func testTaylorSaliencyRefusesLabelsOutsideTheClasses() throws {
        let net = try Chain(sizes: [3, 4, 2], seed: 0)
        let data = try LabeledData(images: Matrix(rows: 4, columns: 3, repeating: 1), labels: [0, 1, 2, 0])
        XCTAssertThrowsError(try Saliency.taylor(data: data, batchCount: 1, batchSize: 4).scores(for: net)) { error in
            XCTAssertEqual((error as? TopiaryError)?.kind, .invalidOption)
        }
    }
}
