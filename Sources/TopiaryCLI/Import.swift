import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a multilayer perceptron trained elsewhere (a PyTorch state dict saved with safetensors).",
        discussion: """
        Reads PREFIX.weight ([out, in]) and PREFIX.bias of each nn.Linear, in F32, F16, BF16 or F64: \
        fc1/fc2/fc3, net.0/net.2/net.4, and so on, ordered by name (fc2 before fc10) and checked by \
        shape, or in the order --map gives. The hidden layers use --activation, the last none. \
        Inputs are normalised as the model was trained: (x / --input-scale − --mean) / --std, e.g. \
        torchvision's ToTensor() then Normalize((0.2860,), (0.3530,)) is --input-scale 255 --mean 0.2860 --std 0.3530.

        Example:
          python -c "from safetensors.torch import save_file; save_file(model.state_dict(), 'sd.safetensors')"
          topiary import --model sd.safetensors --arch 784-300-100-10 --input-scale 255 --mean 0.2860 --std 0.3530 --output model.safetensors
        """
    )

    enum Source: String, ExpressibleByArgument, CaseIterable { case pytorch }

    @Option(help: "Where the model comes from: pytorch (a state dict saved by safetensors.torch.save_file).")
    var from: Source = .pytorch

    @Option(help: "The state dict (safetensors).")
    var model: String

    @Option(help: "The expected sizes, input first (e.g. 784-300-100-10): the import fails if the layers make another network.")
    var arch: String?

    @Option(help: "A file naming the layers' prefixes in network order (one per line, or separated by commas or spaces), when their names do not give it.")
    var map: String?

    @Option(help: "The hidden layers' activation: relu, tanh, sigmoid or identity.")
    var activation: Activation = .relu

    @Option(name: .customLong("input-scale"), help: "Raw inputs are divided by this before --mean and --std (255 for bytes scaled to [0, 1]).")
    var inputScale: Float = 1

    @Option(help: "Subtracted from the scaled inputs.")
    var mean: Float = 0

    @Option(help: "The scaled, centred inputs are divided by this.")
    var std: Float = 1

    @Option(name: .shortAndLong, help: "Where to save the Topiary model.")
    var output: String = "imported.safetensors"

    @Flag(help: "Print one JSON object on standard output.")
    var json = false

    func validate() throws {
        if let arch { _ = try parseArchitecture(arch) }
        guard inputScale.isFinite, inputScale != 0 else { throw ValidationError("--input-scale must be a finite non-zero number.") }
        guard mean.isFinite else { throw ValidationError("--mean must be finite.") }
        guard std.isFinite, std != 0 else { throw ValidationError("--std must be a finite non-zero number.") }
    }

    struct Report: Encodable {
        var model: String
        var output: String
        var architecture: String
        var layers: [String]
        var parameters: Int
        var normalization: Normalization
    }

    func run() throws {
        var order: [String]?
        if let map {
            guard let text = try? String(contentsOfFile: map, encoding: .utf8) else { throw TopiaryError(.fileNotFound, "Cannot read the layer map \(map).") }
            order = text.split { $0 == "," || $0.isWhitespace }.map(String.init)
            guard order?.isEmpty == false else { throw TopiaryError(.invalidOption, "\(map) names no layer.") }
        }
        let normalization = Normalization(scale: 1 / inputScale, mean: mean, std: std)
        let imported = try PyTorch.importModel(from: model, order: order, sizes: try arch.map(parseArchitecture),
                                               activation: activation, normalization: normalization)
        try imported.save(to: output)
        let report = Report(model: model, output: output, architecture: architecture(imported.network.sizes),
                            layers: (imported.metadata["imported_layers"] ?? "").split(separator: ",").map(String.init),
                            parameters: imported.network.parameterCount, normalization: normalization)
        if json { return try printJSON(report) }
        print("imported \(model): \(report.layers.joined(separator: ", ")) → \(report.architecture), \(report.parameters) parameters, inputs (x / \(inputScale) − \(mean)) / \(std); saved \(output)")
    }
}
