import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

/// How `--encoding` names a ``LayerEncoding``.
enum EncodingOption: String, ExpressibleByArgument, CaseIterable {
    case automatic, dense, masked, compressed

    var layerEncoding: LayerEncoding {
        switch self {
        case .automatic: return .automatic
        case .dense: return .dense
        case .masked: return .masked
        case .compressed: return .compressed
        }
    }

    static let help = """
        How to store each layer: automatic (dense when unpruned, else the smaller of masked and \
        compressed), dense (no masks: pruned layers load unpruned), masked (weights plus a \
        1-bit mask) or compressed (CSR: kept weights, column indices, row offsets).
        """
}

/// How `--format` names the kind of file `export` writes.
enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    case topiary, pytorch
}

/// How `--values` names the type of compressed values.
enum ValuesOption: String, ExpressibleByArgument, CaseIterable {
    case f32, f16
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model file to another encoding (dense, masked or compressed), or to a PyTorch state dict.",
        discussion: """
        Conversions between masked and compressed are exact (weights, biases, masks, bit for bit); \
        dense keeps weights and biases and drops the masks; --values f16 rounds compressed values \
        to half precision (masks and biases stay exact). Examples:
          topiary export --model pruned.safetensors --output small.safetensors
          topiary export --model pruned.safetensors --output smaller.safetensors --encoding compressed --values f16
          topiary export --model pruned.safetensors --output plain.safetensors --encoding dense
          topiary export --model pruned.safetensors --output state_dict.safetensors --format pytorch

        --format pytorch writes the state dict of nn.Sequential(nn.Linear, activation, …, nn.Linear) \
        (0.weight, 0.bias, 2.weight, …; pruned weights as zeros, F32), which \
        load_state_dict(safetensors.torch.load_file(...)) takes; its metadata holds the \
        architecture, the activations and the input normalisation (x · input_scale − input_mean) / input_std.
        """
    )

    @Option(help: "The model file to convert (safetensors).")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the converted model (may be --model itself: the write is atomic).")
    var output: String

    @Option(help: "The kind of file: topiary (a model file, in --encoding), or pytorch (a state dict of nn.Sequential).")
    var format: ExportFormat = .topiary

    @Option(help: ArgumentHelp(stringLiteral: EncodingOption.help))
    var encoding: EncodingOption = .automatic

    @Option(help: "The type of compressed weight values: f32, or f16 (half the bytes, rounded to the nearest half-precision number).")
    var values: ValuesOption = .f32

    @Flag(help: "Print one JSON object on standard output.")
    var json = false

    func validate() throws {
        if format == .pytorch, encoding != .automatic || values != .f32 {
            throw ValidationError("--encoding and --values apply to Topiary files: a PyTorch state dict stores dense F32 weights.")
        }
        if values == .f16, encoding == .dense || encoding == .masked {
            throw ValidationError("--values f16 applies to compressed layers: use --encoding automatic or compressed.")
        }
    }

    struct Report: Encodable {
        var model: String
        var encoding: String
        var values: String
        var masks_dropped: [Int]
        var source_bytes: Int
        var output: ModelFileSummary
    }

    /// What `--format pytorch --json` prints.
    struct PyTorchReport: Encodable {
        var model: String
        var format = "pytorch"
        var output: String
        var bytes: Int
        var tensors: [String]
        var sequential: String
        var normalization: Normalization
    }

    func run() throws {
        let sourceBytes = try Model.summary(ofFile: model).bytes
        let loaded = try Model.load(from: model)
        if format == .pytorch { return try exportPyTorch(loaded) }
        try loaded.save(to: output, encoding: encoding.layerEncoding, halfPrecision: values == .f16)
        let dropped = encoding == .dense ? loaded.network.layers.indices.filter {
            loaded.network.layers[$0].mask != nil || loaded.network.layers[$0].biasMask != nil
        } : []
        let summary = try Model.summary(ofFile: output)
        if json {
            return try printJSON(Report(model: model, encoding: encoding.rawValue, values: values.rawValue, masks_dropped: dropped,
                                        source_bytes: sourceBytes, output: summary))
        }
        print("\(model) (\(grouped(sourceBytes)) bytes) → \(output): \(summary.layers.map(\.encoding).joined(separator: ",")), \(grouped(summary.bytes)) bytes, \(percent(summary.ratio_to_dense)) of dense")
        if !dropped.isEmpty {
            print("dense encoding: the masks of layer\(dropped.count > 1 ? "s" : "") \(dropped.map(String.init).joined(separator: ", ")) are not saved; the model loads unpruned")
        }
        print(describe(summary))
    }

    /// Writes `loaded` as a PyTorch state dict and reports it.
    private func exportPyTorch(_ loaded: Model) throws {
        let names = try PyTorch.export(loaded, to: output)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        let sequential = PyTorch.sequentialDescription(of: loaded.network)
        if json {
            return try printJSON(PyTorchReport(model: model, output: output, bytes: bytes, tensors: names,
                                               sequential: sequential, normalization: loaded.normalization))
        }
        let n = loaded.normalization
        print("\(model) → \(output): PyTorch state dict, \(names.count) tensors (\(names.joined(separator: ", "))), \(grouped(bytes)) bytes")
        print("load it with: model = \(sequential); model.load_state_dict(safetensors.torch.load_file(\"\(output)\"))")
        print("inputs: (x · \(n.scale) − \(n.mean)) / \(n.std)")
    }
}
