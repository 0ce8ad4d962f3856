import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// Real data: the control that proves the pipeline is not trivial.
final class PruningFashionMNISTTests: XCTestCase {
    /// LeNet-300-100 trained one epoch on 6,000 Fashion-MNIST images, then pruned one-shot to 90%
    /// without fine-tuning: magnitude keeps most of the accuracy, random saliency loses far more.
    func testRandomSaliencyAt90PercentIsClearlyWorseThanMagnitude() throws {
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) else {
            throw XCTSkip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
        }
        let data = try FashionMNIST.load(validationCount: 0, trainLimit: 6000, testLimit: 2000)
        let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.05, momentum: 0.9), batchSize: 128, seed: 0)
        try trainer.trainEpoch(data.train)
        let dense = try net.evaluate(data.test).accuracy
        let magnitude = net.copy(), random = net.copy()
        try Pruner(saliency: .magnitude, scope: .global).prune(magnitude, to: 0.9)
        try Pruner(saliency: .random(seed: 0), scope: .global).prune(random, to: 0.9)
        let (m, r) = (try magnitude.evaluate(data.test).accuracy, try random.evaluate(data.test).accuracy)
        XCTAssertGreaterThan(m, r + 0.2, "dense \(dense), magnitude \(m), random \(r)")
        XCTAssertGreaterThan(m, dense - 0.15, "dense \(dense), magnitude \(m)")
    }
}
