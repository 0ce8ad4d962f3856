import Foundation
import XCTest
import Topiary   // not @testable: the README's examples use the public API only

/// The README's Swift examples, run on a small subset so that API drift breaks a test.
final class ReadmeExampleTests: XCTestCase {
    func testLibraryExampleRuns() throws {
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) else {
            throw XCTSkip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("topiary-readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("lenet.safetensors").path

        let data = try FashionMNIST.load(validationCount: 500, trainLimit: 3000, testLimit: 1000)
        let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.05, momentum: 0.9), batchSize: 128, seed: 0)
        try trainer.fit(data, epochs: 1)
        XCTAssertGreaterThan(try net.evaluate(data.test).accuracy, 0.6)

        net.layers[0].prune { i in abs(net.layers[0].weight.storage[i]) < 0.02 }
        try Model(network: net, normalization: data.normalization).save(to: path)

        let model = try Model.load(from: path)
        XCTAssertEqual(model.network.nonzeroWeightCount, net.nonzeroWeightCount)
        let plan = try CompiledNetwork(model.network, batchSize: 128, policy: .automatic, threads: 1)
        XCTAssertFalse(plan.report.isEmpty)
        let x = Matrix(rows: 128, columns: 784, storage: Array(data.test.images.storage.prefix(128 * 784)))
        let expected = model.network(x)
        let logits = plan(x)
        for i in 0..<expected.count {
            XCTAssertEqual(logits.storage[i], expected.storage[i], accuracy: 1e-4 * max(1, abs(expected.storage[i])))
        }
    }
}
