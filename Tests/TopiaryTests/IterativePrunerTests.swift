import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class IterativePrunerTests: XCTestCase {
    private func makeRun(_ net: Chain, _ data: Dataset, checkpoint: String? = nil,
                         method: IterativePruner.Method = .weights(Pruner(saliency: .magnitude, scope: .global)),
                         plan: IterativePruner.Plan = .steps(.geometric(fraction: 0.3, milestones: [0.5, 0.8])),
                         fineTuning: FineTuning = FineTuning(epochsPerStep: 1, finalEpochs: 1)) -> IterativePruner {
        IterativePruner(network: net, dataset: data, method: method, plan: plan, fineTuning: fineTuning,
                        optimizer: SGD(learningRate: 0.05, momentum: 0.9), batchSize: 32, seed: 3,
                        checkpointDirectory: checkpoint)
    }

    func testRecordsEveryStepAndLandsOnTheTargets() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 1)
        let given = try Chain(sizes: [12, 24, 4], seed: 0)
        let run = makeRun(given, data)
        let report = try run.run()
        let net = run.network
        XCTAssertEqual(given.sparsity, 0, "the caller's network is left alone")
        XCTAssertEqual(report.steps.map(\.targetSparsity), [0.3, 0.5, 0.65, 0.755, 0.8].map { $0 }, accuracy: 1e-12)
        XCTAssertEqual(report.steps.filter(\.milestone).map(\.step), [2, 5])
        XCTAssertEqual(report.steps.map(\.epochs), [1, 2, 1, 1, 2])
        let total = 12 * 24 + 24 * 4
        XCTAssertEqual(net.nonzeroWeightCount, total - Int((0.8 * Double(total)).rounded()))
        XCTAssertEqual(report.final.sparsity, net.sparsity)
        XCTAssertEqual(report.steps.last!.sparsity, net.sparsity)
        XCTAssertGreaterThan(report.final.testAccuracy, 0.5)
    }

    func testBiasesPrunedWithTheWeightsCountInTheRecordsAndStayZeroThroughFineTuning() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 1)
        let run = makeRun(try Chain(sizes: [12, 24, 4], seed: 0), data, method: .weights(Pruner(saliency: .magnitude, scope: .global, includeBiases: true)))
        XCTAssertTrue(run.fingerprint.contains("; biases"))
        XCTAssertFalse(makeRun(try Chain(sizes: [12, 24, 4], seed: 0), data).fingerprint.contains("biases"))
        let report = try run.run()
        let net = run.network
        let total = 12 * 24 + 24 + 24 * 4 + 4   // 412 parameters, biases included
        XCTAssertEqual(net.nonzeroParameterCount, total - Int((0.8 * Double(total)).rounded()))
        XCTAssertEqual(report.final.nonzeroParameters, net.nonzeroParameterCount)
        XCTAssertEqual(report.final.sparsity, net.parameterSparsity)
        XCTAssertEqual(report.steps.last?.sparsity, net.parameterSparsity)
        XCTAssertEqual(report.steps.last?.layerSparsity, net.layers.map(\.parameterSparsity))
        XCTAssert(net.layers.contains { $0.hasPrunedBiases }, "some biases are among the lowest 80%")
        for layer in net.layers {
            for j in layer.bias.indices where layer.biasMaskOrOnes[j] == 0 {
                XCTAssertEqual(layer.bias[j].bitPattern, Float(0).bitPattern)
            }
        }
    }

    func testWithoutAValidationSplitRecordsHaveNoValidationFigures() throws {
        let split = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 1)
        let data = try Dataset(train: split.train, validation: LabeledData(featureCount: 12), test: split.test,
                           normalization: .identity, classCount: 4)
        let dir = try TemporaryDirectory()
        let report = try makeRun(Chain(sizes: [12, 24, 4], seed: 0), data, checkpoint: dir.path).run()
        XCTAssertEqual(report.steps.map(\.valAccuracy), [Double?](repeating: nil, count: 5))
        XCTAssertEqual(report.steps.map(\.valLoss), [Double?](repeating: nil, count: 5))
        XCTAssertNil(report.final.valAccuracy)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any])
        let step = try XCTUnwrap((json["steps"] as? [[String: Any]])?.first)
        XCTAssert(step["val_accuracy"] is NSNull && step["val_loss"] is NSNull, "\(step)")
        XCTAssert((json["final"] as? [String: Any])?["val_accuracy"] is NSNull, "\(json)")
        // The checkpoint keeps them absent: a resumed run reports the same records.
        let resumed = try makeRun(Chain(sizes: [12, 24, 4], seed: 0), data, checkpoint: dir.path).run(resume: true)
        XCTAssertEqual(resumed.steps, report.steps)
    }

    func testResumedRunReproducesTheUninterruptedRun() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 2)
        let whole = try Chain(sizes: [12, 24, 4], seed: 0)
        let expected = try makeRun(whole, data).run()

        let dir = try TemporaryDirectory()
        // Interrupt after step 3: the callback throws.
        struct Stop: Error {}
        let first = try Chain(sizes: [12, 24, 4], seed: 0)
        XCTAssertThrowsError(try makeRun(first, data, checkpoint: dir.path).run(onStep: { record, _ in
            if record.step == 3 { throw Stop() }
        }))
        XCTAssert(try dir.contents().contains("state.json"))
        let resumed = try Chain(sizes: [12, 24, 4], seed: 0)   // the original network, as the CLI would reload it
        let report = try makeRun(resumed, data, checkpoint: dir.path).run(resume: true)
        XCTAssertEqual(report.steps.count, expected.steps.count)
        XCTAssertEqual(report.steps.map(\.testAccuracy), expected.steps.map(\.testAccuracy))
        XCTAssertEqual(report.final, expected.final)
        for (a, b) in zip(resumed.layers, whole.layers) {
            XCTAssertEqual(a.weight.storage.map(\.bitPattern), b.weight.storage.map(\.bitPattern))
        }
        // A checkpoint of another run is refused.
        let other = try Chain(sizes: [12, 24, 4], seed: 0)
        assertThrowsTopiaryError(.invalidOption, try self.makeRun(other, data, checkpoint: dir.path,
                                                                  fineTuning: FineTuning(epochsPerStep: 2)).run(resume: true))
    }

    func testReportedSparsityEqualsZerosInTheSavedFile() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 3)
        let run = makeRun(try Chain(sizes: [12, 24, 4], seed: 0), data, method: .weights(Pruner(saliency: .random(seed: 1), scope: .layerwise)),
                          plan: .steps(.oneShot(0.77)))
        let report = try run.run()
        let net = run.network
        let dir = try TemporaryDirectory()
        try Model(network: net).save(to: dir.file("p.safetensors"))
        let file = try SafeTensors.read(from: dir.file("p.safetensors"))
        // Saved compressed (automatic encoding): a layer's zeros are the weights the file does not
        // store plus any stored value that is 0.
        XCTAssertEqual(file.metadata["layer_encodings"], "csr,csr")
        var zeros = 0, count = 0
        for (l, (input, output)) in [(12, 24), (24, 4)].enumerated() {
            let values = try XCTUnwrap(file.tensors["layers.\(l).values"]?.float32Values)
            zeros += input * output - values.filter { $0 != 0 }.count
            count += input * output
        }
        XCTAssertEqual(report.final.sparsity, Double(zeros) / Double(count))
    }

    func testGradualScheduleInsideTraining() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 4)
        // 13 batches per epoch; 6 events every 4 iterations from iteration 0 → all inside 2 epochs.
        let agp = GradualSchedule(final: 0.9, steps: 6, interval: 4)
        let run = makeRun(try Chain(sizes: [12, 24, 4], seed: 0), data, plan: .gradual(agp, epochs: 3), fineTuning: FineTuning(finalEpochs: 1))
        let report = try run.run()
        let net = run.network
        XCTAssertEqual(report.steps.count, 4)
        XCTAssertEqual(report.steps[0].targetSparsity, agp.sparsity(atIteration: 13))
        XCTAssertEqual(report.steps[1].sparsity, report.steps[3].sparsity)
        let total = 12 * 24 + 24 * 4
        XCTAssertEqual(net.nonzeroWeightCount, total - Int((0.9 * Double(total)).rounded()))
    }

    /// The totals a caller needs before running (a cosine schedule spans all epochs): one step per
    /// schedule step, or per epoch plus the final phase inside training.
    func testPlannedStepsAndEpochs() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 6)
        let net = try Chain(sizes: [12, 24, 4], seed: 0)
        // geometric 0.3 to milestones 0.5, 0.8: 0.3, 0.5, 0.65, 0.755, 0.8 (two milestones).
        let steps = makeRun(net, data, fineTuning: FineTuning(epochsPerStep: 2, finalEpochs: 3))
        XCTAssertEqual(try steps.plannedSteps(), 5)
        XCTAssertEqual(try steps.plannedEpochs(), 5 * 2 + 2 * 3)
        let gradual = makeRun(net, data, plan: .gradual(GradualSchedule(final: 0.9, steps: 6, interval: 4), epochs: 3),
                              fineTuning: FineTuning(epochsPerStep: 7, finalEpochs: 2))
        XCTAssertEqual(try gradual.plannedSteps(), 4)
        XCTAssertEqual(try gradual.plannedEpochs(), 3 + 2)
        let report = try gradual.run()
        XCTAssertEqual(report.steps.count, 4)
        XCTAssertEqual(report.steps.map(\.epochs).reduce(0, +), 5)
        assertThrowsTopiaryError(.invalidOption, try makeRun(net, data, plan: .steps(.list([0.5, 0.3]))).plannedSteps())
    }

    /// A snapshot of other sizes is refused before any work, not when the first step rewinds.
    func testRewindSnapshotOfOtherSizesIsRefusedBeforeWork() throws {
        let data = try argmaxDataset(train: 100, validation: 20, test: 20, seed: 7)
        let snapshot = WeightSnapshot(try Chain(sizes: [12, 8, 4], seed: 0), epoch: 0)
        for method in [IterativePruner.Method.weights(Pruner()), .neurons(NeuronPruner())] {
            let run = makeRun(try Chain(sizes: [12, 24, 4], seed: 0), data, method: method, plan: .steps(.oneShot(0.5)),
                              fineTuning: FineTuning(policy: .rewind(snapshot)))
            let error = assertThrowsTopiaryError(.invalidShape, try run.run())
            XCTAssert(error?.message.contains("12-8-4") ?? false, error?.message ?? "")
            XCTAssertEqual(run.network.sparsity, 0, "nothing was pruned")
        }
    }

    func testStructuredIterativeWithRewind() throws {
        let data = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 5)
        let net = try Chain(sizes: [12, 24, 16, 4], seed: 0)
        let snapshot = WeightSnapshot(net, epoch: 0)
        let report = try makeRun(net, data, method: .neurons(NeuronPruner(criterion: .l1)),
                                 plan: .steps(.list([0.25, 0.5])),
                                 fineTuning: FineTuning(policy: .rewind(snapshot), epochsPerStep: 1)).run()
        XCTAssertEqual(report.steps.map(\.sizes), [[12, 18, 12, 4], [12, 12, 8, 4]])
        XCTAssertEqual(report.final.sizes, [12, 12, 8, 4])
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
