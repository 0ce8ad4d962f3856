import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// `--resume` reads `state.json`; a corrupted or foreign one must be refused with a typed error
/// naming the file, not trap on a range or a precondition.
final class PruningCheckpointTests: XCTestCase {
    private func structuredRun(_ data: Dataset, checkpoint: String) throws -> IterativePruner {
        IterativePruner(network: try Chain(sizes: [12, 24, 16, 4], seed: 0), dataset: data,
                        method: .neurons(NeuronPruner(criterion: .l1)), plan: .steps(.list([0.25, 0.5])),
                        fineTuning: FineTuning(epochsPerStep: 1), optimizer: SGD(learningRate: 0.05, momentum: 0.9),
                        batchSize: 32, seed: 3, checkpointDirectory: checkpoint)
    }

    /// Runs the structured run to completion with a checkpoint, applies `corrupt` to the state
    /// text, and expects resuming to throw `corruptFile` naming `file` (default state.json).
    private func assertResumeRefused(file: String = "state.json", _ corrupt: (String, TemporaryDirectory) throws -> String,
                                     line: UInt = #line) throws {
        let data = try argmaxDataset(train: 200, validation: 50, test: 50, seed: 1)
        let dir = try TemporaryDirectory()
        _ = try structuredRun(data, checkpoint: dir.path).run()
        let statePath = dir.path + "/state.json"
        let text = try String(contentsOfFile: statePath, encoding: .utf8)
        try corrupt(text, dir).write(toFile: statePath, atomically: true, encoding: .utf8)
        let error = assertThrowsTopiaryError(.corruptFile, try structuredRun(data, checkpoint: dir.path).run(resume: true), line: line)
        XCTAssert(error?.message.contains(file) ?? false, "\(error?.message ?? "") does not name \(file)", line: line)
    }

    func testUntouchedCheckpointResumes() throws {
        let data = try argmaxDataset(train: 200, validation: 50, test: 50, seed: 1)
        let dir = try TemporaryDirectory()
        let expected = try structuredRun(data, checkpoint: dir.path).run()
        let resumed = try structuredRun(data, checkpoint: dir.path).run(resume: true)
        XCTAssertEqual(resumed.steps.map(\.sizes), expected.steps.map(\.sizes))
        XCTAssertEqual(resumed.final.sizes, [12, 12, 8, 4])
    }

    func testMoreRecordsThanStepsIsRefused() throws {
        try assertResumeRefused { text, _ in
            let start = try XCTUnwrap(text.range(of: "\"records\":[")).upperBound
            let end = try XCTUnwrap(text.range(of: "]}", options: .backwards)).lowerBound
            let records = text[start..<end]
            return text[..<start] + records + "," + records + "]}\n"
        }
    }

    func testKeptNeuronOutOfRangeIsRefused() throws {
        try assertResumeRefused { text, _ in
            text.replacingOccurrences(of: "\"kept_neurons\":[[", with: "\"kept_neurons\":[[1000000,")
        }
        try assertResumeRefused { text, _ in
            text.replacingOccurrences(of: "\"kept_neurons\":[[", with: "\"kept_neurons\":[[-1,")
        }
    }

    func testWrongHiddenLayerCountIsRefused() throws {
        try assertResumeRefused { text, _ in
            text.replacingOccurrences(of: "\"original_hidden\":[24,16]", with: "\"original_hidden\":[24]")
        }
    }

    func testCheckpointNetworkOfOtherSizesIsRefused() throws {
        try assertResumeRefused(file: "step-0002.safetensors") { text, dir in
            XCTAssert(text.contains("\"model\":\"step-0002.safetensors\""), text)
            try Model(network: Chain(sizes: [12, 5, 7, 4], seed: 0), normalization: .identity)
                .save(to: dir.path + "/step-0002.safetensors")
            return text
        }
    }
}
