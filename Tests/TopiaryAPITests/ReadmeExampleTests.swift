import Foundation
import XCTest
import Topiary   // not @testable: the README's examples use the public API only

/// The README's Swift examples, run on a small subset so that API drift breaks a test.
final class ReadmeExampleTests: XCTestCase {
    /// A new temporary folder; skips the test when Fashion-MNIST is not installed.
    private func scratchFolder() throws -> URL {
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) else {
            throw XCTSkip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("topiary-readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func testLibraryExampleRuns() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("lenet.safetensors").path

        // The README's example, on a subset and one epoch.
        let data = try FashionMNIST.load(validationCount: 500, trainLimit: 3000, testLimit: 1000)
        let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.05, momentum: 0.9), batchSize: 128, seed: 0)
        try trainer.fit(data, epochs: 1)
        let dense = try net.evaluate(data.test).accuracy
        XCTAssertGreaterThan(dense, 0.6)

        try Pruner(saliency: .magnitude, scope: .global).prune(net, to: 0.9)
        XCTAssertEqual(net.nonzeroWeightCount, 266_200 - 239_580, "exactly 90% of the weights are zero")
        XCTAssertTrue(net.description.contains("90.0% sparse"), net.description)
        try Model(network: net, normalization: data.normalization).save(to: path)

        let plan = try CompiledNetwork(net, batchSize: 128)
        let compiled = try plan.evaluate(data.test)
        let reference = try net.evaluate(data.test)
        XCTAssertEqual(compiled.accuracy, reference.accuracy, accuracy: 0.002)
        XCTAssertEqual(compiled.loss, reference.loss, accuracy: 1e-4)

        let model = try Model.load(from: path)
        XCTAssertEqual(model.network.nonzeroWeightCount, net.nonzeroWeightCount)
        let x = Matrix(rows: 128, columns: 784, storage: Array(data.test.images.storage.prefix(128 * 784)))
        let expected = try model.network.predict(x)
        let logits = try plan.predict(x)
        for i in 0..<expected.count {
            XCTAssertEqual(logits.storage[i], expected.storage[i], accuracy: 1e-4 * max(1, abs(expected.storage[i])))
        }
    }

    /// The pruning example (the DocC article PruningANetwork and docs/benchmarks.md), on a subset, a small network and a short schedule.
    func testPruningExampleRuns() throws {
        let dir = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let dense = try FashionMNIST.load(validationCount: 200, trainLimit: 1200, testLimit: 500)
        let trained = try Chain(sizes: [784, 64, 10], seed: 0)
        try Trainer(network: trained, optimizer: SGD(learningRate: 0.05, momentum: 0.9), seed: 0).fit(dense, epochs: 1)
        try Model(network: trained, normalization: dense.normalization).save(to: dir.appendingPathComponent("dense.safetensors").path)

        let model = try Model.load(from: dir.appendingPathComponent("dense.safetensors").path)
        let data = try FashionMNIST.load(validationCount: 200, trainLimit: 1200, testLimit: 500, normalization: model.normalization)
        let run = IterativePruner(network: model.network, dataset: data,
                                  method: .weights(Pruner(saliency: .magnitude, scope: .global)),
                                  plan: .steps(.geometric(fraction: 0.5, milestones: [0.9, 0.95])),
                                  fineTuning: FineTuning(epochsPerStep: 1, finalEpochs: 1),
                                  optimizer: SGD(learningRate: 0.01, momentum: 0.9))
        let report = try run.run()
        XCTAssertEqual(report.steps.filter(\.milestone).map(\.targetSparsity), [0.9, 0.95])
        XCTAssertEqual(model.network.sparsity, 0, "the loaded model is left alone")
        let weights = run.network.weightCount
        XCTAssertEqual(run.network.nonzeroWeightCount, weights - Int((0.95 * Double(weights)).rounded()))
        XCTAssertTrue(report.description.contains("milestone"), report.description)
        let path = dir.appendingPathComponent("pruned.safetensors").path
        try Model(network: run.network, normalization: model.normalization).save(to: path)
        XCTAssertEqual(try Model.load(from: path).network.nonzeroWeightCount, run.network.nonzeroWeightCount)
    }
}
