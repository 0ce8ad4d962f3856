import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a saved model on the test split.",
        discussion: "The inputs are normalised exactly as the model was trained (the model file records it)."
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var common: CommonOptions

    @Option(help: "The model file (safetensors).")
    var model: String

    @Option(name: .customLong("batch-size"), help: "Examples per evaluation batch.")
    var batchSize: Int = 1000

    @Option(help: "Also write the network's outputs (logits) on the test split to this NumPy .npy file (float32, [count, classes]).")
    var predictions: String?

    func validate() throws {
        guard (1...65536).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 65536.") }
    }

    struct Report: Encodable {
        var model: String
        var architecture: String
        var parameters: Int
        var nonzero_parameters: Int
        var sparsity: Double
        var layer_sparsity: [Double]
        var test_accuracy: Double
        var test_loss: Double
        var test_count: Int
        var seconds: Double
        var predictions: String?
    }

    func run() throws {
        common.apply()
        let loaded = try Model.load(from: model)
        let network = loaded.network
        let dataset = try data.load(for: loaded, path: model, validationCount: 0)
        let clock = ContinuousClock()
        let start = clock.now
        let test = try network.evaluate(dataset.test, batchSize: batchSize)
        let seconds = (clock.now - start).seconds
        if let predictions {
            let logits = try network.predict(dataset.test.images)
            try writeFileAtomically(NumPyFile.float32(logits.storage, shape: [logits.rows, logits.columns]), to: predictions)
        }
        let report = Report(model: model, architecture: network.sizes.map(String.init).joined(separator: "-"),
                            parameters: network.parameterCount, nonzero_parameters: network.nonzeroParameterCount,
                            sparsity: network.sparsity, layer_sparsity: network.layers.map(\.sparsity),
                            test_accuracy: test.accuracy, test_loss: test.loss, test_count: test.count, seconds: seconds, predictions: predictions)
        if common.json {
            try printJSON(report)
        } else {
            print("\(model): \(report.architecture), \(report.nonzero_parameters)/\(report.parameters) non-zero parameters (weight sparsity \(percent(report.sparsity)))")
            print("test accuracy \(percent(test.accuracy)), test loss \(String(format: "%.4f", test.loss)) on \(test.count) images in \(String(format: "%.3f", seconds)) s")
        }
    }
}

/// NumPy's `.npy` format (version 1.0), for the files the command-line tool writes.
enum NumPyFile {
    /// The bytes of a little-endian `float32` array of `shape` (C order) holding `values`.
    static func float32(_ values: [Float], shape: [Int]) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic (6) + version (2) + length (2) + header + "\n", padded with spaces to a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        bytes.reserveCapacity(bytes.count + 4 * values.count)
        for v in values {
            let b = v.bitPattern.littleEndian
            bytes += [UInt8(b & 0xFF), UInt8((b >> 8) & 0xFF), UInt8((b >> 16) & 0xFF), UInt8(b >> 24)]
        }
        return bytes
    }
}
