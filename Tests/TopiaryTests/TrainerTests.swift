import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class TrainerTests: XCTestCase {
    func testSameSeedGivesBitIdenticalWeights() throws {
        let data = try argmaxProblem(count: 300, seed: 1)
        func trainOnce() throws -> Chain {
            let net = try Chain(sizes: [12, 16, 4], seed: 7)
            let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.1, momentum: 0.9), batchSize: 32, seed: 7)
            for _ in 0..<3 { try trainer.trainEpoch(data) }
            return net
        }
        let a = try trainOnce(), b = try trainOnce()
        for (la, lb) in zip(a.layers, b.layers) {
            XCTAssertEqual(la.weight.storage.map(\.bitPattern), lb.weight.storage.map(\.bitPattern))
            XCTAssertEqual(la.bias.map(\.bitPattern), lb.bias.map(\.bitPattern))
        }
        // A different seed gives different weights.
        let c = try Chain(sizes: [12, 16, 4], seed: 8)
        XCTAssertNotEqual(c.layers[0].weight, a.layers[0].weight)
    }

    func testTrainingLearnsSyntheticProblem() throws {
        let train = try argmaxProblem(count: 2000, seed: 2), test = try argmaxProblem(count: 500, seed: 3)
        let net = try Chain(sizes: [12, 32, 4], seed: 0)
        let before = try net.evaluate(test).accuracy
        let trainer = try Trainer(network: net, optimizer: Adam(learningRate: 0.01), batchSize: 50, seed: 0)
        var losses: [Double] = []
        for _ in 0..<10 { losses.append(try trainer.trainEpoch(train).loss) }
        let after = try net.evaluate(test).accuracy
        XCTAssertLessThan(losses.last!, losses.first! * 0.5)
        XCTAssertGreaterThan(after, 0.9, "accuracy \(after), was \(before) before training")
    }

    func testDivergenceThrowsNonFinite() throws {
        let data = try argmaxProblem(count: 64, seed: 4)
        let net = try Chain(sizes: [12, 8, 4], seed: 0)
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 1e30), batchSize: 16, seed: 0)
        XCTAssertThrowsError(try { for _ in 0..<5 { try trainer.trainEpoch(data) } }()) { error in
            XCTAssertEqual((error as? TopiaryError)?.kind, .nonFinite)
        }
    }

    func testMaskedNetworkTrainsWithPrunedWeightsStayingZero() throws {
        let data = try argmaxProblem(count: 256, seed: 5)
        let net = try Chain(sizes: [12, 16, 4], seed: 1)
        net.layers[0].prune { $0 % 2 == 1 }
        let trainer = try Trainer(network: net, optimizer: Adam.adamW(learningRate: 0.01, weightDecay: 0.1), batchSize: 32, seed: 1)
        for _ in 0..<3 { try trainer.trainEpoch(data) }
        let w = net.layers[0].weight.storage
        for i in stride(from: 1, to: w.count, by: 2) { XCTAssertEqual(w[i], 0) }
    }

    private func assertSameParameters(_ a: Chain, _ b: Chain, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.sizes, b.sizes, message, file: file, line: line)
        for (la, lb) in zip(a.layers, b.layers) {
            XCTAssertEqual(la.weight.storage.map(\.bitPattern), lb.weight.storage.map(\.bitPattern), message, file: file, line: line)
            XCTAssertEqual(la.bias.map(\.bitPattern), lb.bias.map(\.bitPattern), message, file: file, line: line)
        }
    }

    func testWeightsSavedInOnEpochEqualARunOfThatManyEpochsBitForBit() throws {
        let data = try argmaxDataset(train: 300, validation: 50, test: 50, seed: 6)
        let dir = try TemporaryDirectory()
        func makeTrainer(_ net: Chain) throws -> Trainer {
            try Trainer(network: net, optimizer: SGD(learningRate: 0.1, momentum: 0.9), batchSize: 32, seed: 7)
        }
        let net = try Chain(sizes: [12, 16, 4], seed: 7)
        try Model(network: net, epoch: 0).save(to: dir.file("dense.epoch-0.safetensors"))
        try makeTrainer(net).fit(data, epochs: 3, onEpoch: { record in
            if record.epoch == 2 { try Model(network: net, epoch: 2).save(to: dir.file("dense.epoch-2.safetensors")) }
        })
        XCTAssertEqual(try dir.contents(), ["dense.epoch-0.safetensors", "dense.epoch-2.safetensors"])

        let twoEpochs = try Chain(sizes: [12, 16, 4], seed: 7)
        try makeTrainer(twoEpochs).fit(data, epochs: 2)
        let saved = try Model.load(from: dir.file("dense.epoch-2.safetensors")).network
        assertSameParameters(saved, twoEpochs, "epoch 2")
        XCTAssertNotEqual(saved.layers[0].weight, net.layers[0].weight, "the third epoch moved on")
        assertSameParameters(try Model.load(from: dir.file("dense.epoch-0.safetensors")).network,
                             try Chain(sizes: [12, 16, 4], seed: 7), "epoch 0 is the initialisation")
    }

    func testWithoutAValidationSplitTheValidationFiguresAreNullNotZero() throws {
        let split = try argmaxDataset(train: 200, validation: 50, test: 50, seed: 8)
        let empty = try Dataset(train: split.train, validation: LabeledData(featureCount: 12), test: split.test,
                            normalization: .identity, classCount: 4)
        let records = try Trainer(network: Chain(sizes: [12, 8, 4], seed: 0), optimizer: SGD(learningRate: 0.1), batchSize: 32, seed: 0)
            .fit(empty, epochs: 1)
        XCTAssertNil(records[0].valAccuracy)
        XCTAssertNil(records[0].valLoss)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(records[0])) as? [String: Any])
        XCTAssert(json["val_accuracy"] is NSNull, "\(json)")
        XCTAssert(json["val_loss"] is NSNull, "\(json)")
        XCTAssertEqual(Set(json.keys), ["epoch", "train_loss", "val_loss", "val_accuracy", "test_accuracy", "seconds"])

        let net = try Chain(sizes: [12, 8, 4], seed: 0)
        let withSplit = try Trainer(network: net, optimizer: SGD(learningRate: 0.1), batchSize: 32, seed: 0).fit(split, epochs: 1)
        XCTAssertEqual(withSplit[0].valAccuracy, try net.evaluate(split.validation).accuracy)
        XCTAssertEqual(withSplit[0].valLoss, try net.evaluate(split.validation).loss)
        XCTAssertEqual(withSplit[0].testAccuracy, records[0].testAccuracy, "the same training, only the validation differs")
    }

    func testAnErrorThrownByOnEpochStopsTraining() throws {
        struct Stop: Error {}
        let trainer = try Trainer(network: try Chain(sizes: [12, 8, 4], seed: 0), optimizer: SGD(learningRate: 0.1), batchSize: 16, seed: 0)
        XCTAssertThrowsError(try trainer.fit(argmaxDataset(train: 64, validation: 16, test: 16, seed: 1), epochs: 5,
                                             onEpoch: { record in if record.epoch == 2 { throw Stop() } }))
        XCTAssertEqual(trainer.epochsCompleted, 2)
    }

    /// Real data: LeNet-300-100 trained two epochs on the first 10,000 Fashion-MNIST training images
    /// (SGD 0.05, momentum 0.9, seed 0) reaches at least 80% on the whole test set (82.2% measured;
    /// one epoch gives 78%, the full 55,000-image recipe 84% after one epoch and 88% after fifteen).
    func testTwoEpochsOnFashionMNISTSubsetReach80Percent() throws {
        guard FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory) else {
            throw XCTSkip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
        }
        let dataset = try FashionMNIST.load(validationCount: 0, trainLimit: 10_000)
        XCTAssertEqual(dataset.train.count, 10_000)
        let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
        let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.05, momentum: 0.9), batchSize: 128, seed: 0)
        try trainer.trainEpoch(dataset.train)
        try trainer.trainEpoch(dataset.train)
        let accuracy = try net.evaluate(dataset.test).accuracy
        XCTAssertGreaterThanOrEqual(accuracy, 0.80)
    }
}

import Foundation
