import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

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
    }

    func run() throws {
        common.apply()
        let loaded = try Model.load(from: model)
        let network = loaded.network
        let dataset = try data.load(for: loaded, path: model)
        let clock = ContinuousClock()
        let start = clock.now
        let test = try network.evaluate(dataset.test, batchSize: batchSize)
        let seconds = (clock.now - start).seconds
        let report = Report(model: model, architecture: network.sizes.map(String.init).joined(separator: "-"),
                            parameters: network.parameterCount, nonzero_parameters: network.nonzeroParameterCount,
                            sparsity: network.sparsity, layer_sparsity: network.layers.map(\.sparsity),
                            test_accuracy: test.accuracy, test_loss: test.loss, test_count: test.count, seconds: seconds)
        if common.json {
            try printJSON(report)
        } else {
            print("\(model): \(report.architecture), \(report.nonzero_parameters)/\(report.parameters) non-zero parameters (weight sparsity \(percent(report.sparsity)))")
            print("test accuracy \(percent(test.accuracy)), test loss \(String(format: "%.4f", test.loss)) on \(test.count) images in \(String(format: "%.3f", seconds)) s")
        }
    }
}
