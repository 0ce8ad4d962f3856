import Foundation

/// A network with everything needed to use it: the input normalization it was trained with,
/// typed records of how it was made, and free-form metadata. Saved as a safetensors file.
///
/// The file holds, for each layer `N` (input first), its weights in one of three encodings
/// (``LayerEncoding``: dense `layers.N.weight`, `F32` `[out, in]`; masked, the same plus
/// `layers.N.mask` as packed bits; or compressed, `layers.N.values`, `layers.N.col_indices` and
/// `layers.N.row_offsets` in CSR form), `layers.N.bias` (`F32`, `[out]`) and, only when some of
/// its biases are pruned, `layers.N.bias_mask` (a file without it has every bias kept). Its
/// `__metadata__` holds `format` (`topiary`), `format_version` (`1` when every layer is dense,
/// `2` otherwise), `layer_encodings` in version 2 (`csr,csr,masked`), `architecture`
/// (`784-300-100-10`), `activations` (`relu,relu,identity`), `input_scale`, `input_mean`,
/// `input_std` (shortest round-trip decimal `Float`s), the typed records when present —
/// `training_recipe` (``TrainingRecipe`` as JSON), `training_epoch` (an integer) and
/// `pruning_provenance` (``PruningProvenance`` as JSON) — and the user's metadata. Version-1
/// files with masks (written before the encodings) store them one byte per weight,
/// `layers.N.mask` (`U8`, `[out, in]`), and still load.
///
/// Saving and loading is exact: weights, biases, masks and the typed records keep their values
/// (the dense encoding alone drops masks, and `F16` values round), and re-saving a loaded model
/// with the same encoding gives a byte-identical file. Files written before the typed
/// records existed load with them `nil`; their free-text entries (such as `trained_with`) stay in
/// ``metadata``.
///
/// ```swift
/// let model = Model(network: try Chain(sizes: [784, 300, 100, 10], seed: 0),
///                   normalization: data.normalization, metadata: ["dataset": "fashion-mnist"])
/// try model.save(to: "lenet.safetensors")
/// let back = try Model.load(from: "lenet.safetensors")
/// ```
public struct Model {
    /// The network.
    public var network: Chain
    /// The map applied to raw inputs before the network sees them.
    public var normalization: Normalization
    /// How the network was trained, so that its initialisation can be rebuilt
    /// (``WeightSnapshot/initialization(of:)``) and a snapshot matched to its training run;
    /// `nil` when unknown (a hand-built model, or a file written before recipes were recorded).
    public var recipe: TrainingRecipe?
    /// For weights saved during training: the epoch at whose end they were saved (0: the
    /// initialisation, before any training); `nil` for a finished model.
    public var epoch: Int?
    /// How the model was pruned from another; `nil` for a model Topiary did not prune.
    public var provenance: PruningProvenance?
    /// Free-form metadata saved with the model; keys must not be in `reservedMetadataKeys`.
    public var metadata: [String: String]

    /// Creates a model.
    public init(network: Chain, normalization: Normalization = .identity, recipe: TrainingRecipe? = nil,
                epoch: Int? = nil, provenance: PruningProvenance? = nil, metadata: [String: String] = [:]) {
        self.network = network
        self.normalization = normalization
        self.recipe = recipe
        self.epoch = epoch
        self.provenance = provenance
        self.metadata = metadata
    }

    /// The value of the `format` metadata entry.
    static let formatName = "topiary"
    /// The `format_version`s this version reads. It writes 1 when every layer is stored dense
    /// (the files of Topiary before the encodings, byte for byte) and 2 when some layer is masked
    /// or compressed.
    static let formatVersions = 1...2
    /// The metadata key of the layers' encodings in a version-2 file (`csr,csr,masked`).
    static let encodingsKey = "layer_encodings"
    /// The metadata keys Topiary writes itself; user metadata cannot use them.
    static let reservedMetadataKeys: Set<String> = [
        "format", "format_version", "architecture", "activations", "input_scale", "input_mean", "input_std",
        encodingsKey, RecordKey.recipe, RecordKey.epoch, RecordKey.provenance,
    ]

    /// The metadata keys of the typed records.
    enum RecordKey {
        static let recipe = "training_recipe"
        static let epoch = "training_epoch"
        static let provenance = "pruning_provenance"
    }

    /// Whether this model holds the weights of `model`'s training run at the end of epoch
    /// `epoch`: both record the same ``TrainingRecipe`` and this one records that epoch. Without
    /// a recipe a model is nobody's snapshot, since nothing says which run it comes from.
    @_spi(Files) public func isSnapshot(of model: Model, atEpoch epoch: Int) -> Bool {
        guard let recipe, recipe == model.recipe else { return false }
        return self.epoch == epoch
    }

    // MARK: Saving

    /// The model as a safetensors container, each layer stored as `encoding` asks (see
    /// ``LayerEncoding``); `version1` writes the format of Topiary before the encodings (masks
    /// one byte per weight), for the tests of old files.
    ///
    /// - Throws: `invalidOption` when user metadata uses a reserved key, the normalization is not
    ///   invertible, a typed record holds a non-finite number, the epoch is negative,
    ///   `halfPrecision` is asked for with the dense or masked encoding, or a weight is beyond
    ///   `F16`'s range; `nonFinite` when a weight or bias is NaN or infinite.
    func safeTensors(encoding: LayerEncoding = .automatic, halfPrecision: Bool = false,
                     version1: Bool = false) throws -> SafeTensors {
        if let key = metadata.keys.filter({ Self.reservedMetadataKeys.contains($0) }).sorted().first {
            throw TopiaryError(.invalidOption, "metadata key \"\(key)\" is reserved for Topiary's own entries")
        }
        guard normalization.isValid else {
            throw TopiaryError(.invalidOption, "normalization \(normalization) is not invertible (non-finite, or zero scale or std)")
        }
        if halfPrecision, encoding == .dense || encoding == .masked {
            throw TopiaryError(.invalidOption, "F16 values are for compressed layers; save with the automatic or compressed encoding, or without F16")
        }
        var file = SafeTensors(metadata: metadata)
        file.metadata["format"] = Self.formatName
        file.metadata["architecture"] = network.sizes.map(String.init).joined(separator: "-")
        file.metadata["activations"] = network.layers.map(\.activation.rawValue).joined(separator: ",")
        file.metadata["input_scale"] = normalization.scale.description
        file.metadata["input_mean"] = normalization.mean.description
        file.metadata["input_std"] = normalization.std.description
        if let recipe { file.metadata[RecordKey.recipe] = try Self.json(recipe, key: RecordKey.recipe) }
        if let epoch {
            guard epoch >= 0 else { throw TopiaryError(.invalidOption, "the training epoch of a snapshot must be at least 0, got \(epoch)") }
            file.metadata[RecordKey.epoch] = String(epoch)
        }
        if let provenance { file.metadata[RecordKey.provenance] = try Self.json(provenance, key: RecordKey.provenance) }
        let stored: [StoredEncoding] = network.layers.map { layer in
            version1 ? (layer.mask == nil ? .dense : .masked) : LayerCodec.choose(encoding, for: layer, halfPrecision: halfPrecision)
        }
        let version = version1 || stored.allSatisfy({ $0 == .dense }) ? 1 : 2
        file.metadata["format_version"] = String(version)
        if version > 1 { file.metadata[Self.encodingsKey] = stored.map(\.rawValue).joined(separator: ",") }
        for (l, layer) in network.layers.enumerated() {
            guard layer.weight.isFinite, layer.bias.allSatisfy(\.isFinite) else {
                throw TopiaryError(.nonFinite, "layer \(l) holds NaN or infinite parameters; the model is not saved")
            }
            try LayerCodec.encode(layer, index: l, as: stored[l], version: version, withMasks: encoding != .dense,
                                  halfPrecision: halfPrecision, into: &file)
        }
        return file
    }

    /// Saves the model to `path` atomically: a temporary file in the same folder, flushed to
    /// disk, then renamed over `path`, so an interrupted save never destroys a good file.
    ///
    /// - Parameters:
    ///   - path: the file to write (a `.safetensors` file).
    ///   - encoding: how each layer's weights are stored; ``LayerEncoding/automatic`` (the
    ///     default) stores unpruned layers dense and pruned ones in whichever of the masked and
    ///     compressed forms is smaller.
    ///   - halfPrecision: stores the values of compressed layers as `F16`, 2 bytes instead of 4:
    ///     each weight rounds to the nearest half-precision number (lossy; masks and biases stay
    ///     exact). Only with ``LayerEncoding/automatic`` and ``LayerEncoding/compressed``.
    /// - Throws: `writeFailed` naming `path`; `invalidOption` when user metadata uses a reserved
    ///   key, the normalization is not invertible, a typed record cannot be saved,
    ///   `halfPrecision` comes with the dense or masked encoding, or a weight is beyond `F16`'s
    ///   range (±65504); `nonFinite` when a weight or bias is NaN or infinite.
    public func save(to path: String, encoding: LayerEncoding = .automatic, halfPrecision: Bool = false) throws {
        try safeTensors(encoding: encoding, halfPrecision: halfPrecision).write(to: path)
    }

    // MARK: Loading

    /// Loads and validates the model saved at `path`, whatever the encodings of its layers
    /// (see ``LayerEncoding``); a compressed layer's stored pattern becomes its mask.
    ///
    /// - Throws: `fileNotFound` if it is missing; `corruptFile` naming `path` for a damaged
    ///   container, missing or malformed metadata, an unknown layer encoding, a tensor of the
    ///   wrong dtype or shape, layers that do not chain, unexpected tensors, a mask of the wrong
    ///   size or with entries other than 0 and 1, a non-zero weight (bias) where the mask (bias
    ///   mask) is 0, CSR row offsets that do not start at 0, decrease or disagree with the number
    ///   of values, CSR column indices out of range or not increasing within a row;
    ///   `invalidShape` when the network would take more than 4 GiB of weights in memory;
    ///   `nonFinite` for NaN or infinite parameters.
    public static func load(from path: String) throws -> Model {
        try Model(safeTensors: try SafeTensors.read(from: path), source: path)
    }

    /// Builds and validates a model from a safetensors container; `source` names it in errors.
    ///
    /// - Throws: as ``load(from:)``.
    init(safeTensors file: SafeTensors, source: String = "model") throws {
        self.init(try Contents(file, source: source))
    }

    /// The model a file's validated contents describe (compressed layers expanded).
    init(_ contents: Contents) {
        self.init(network: Chain(checked: contents.layers.map { $0.dense() }), normalization: contents.normalization,
                  recipe: contents.recipe, epoch: contents.epoch, provenance: contents.provenance,
                  metadata: contents.metadata)
    }

    /// A model file's contents, validated, with each layer as the file stores it.
    struct Contents {
        var version: Int
        var architecture: String
        var layers: [LayerCodec.Layer]
        var normalization: Normalization
        var recipe: TrainingRecipe?
        var epoch: Int?
        var provenance: PruningProvenance?
        var metadata: [String: String]

        /// Reads and validates a container; `source` names it in errors. `maximumWeightBytes`
        /// caps the bytes the layers' weights take in memory once dense (4 GiB, the largest
        /// model file, unless the fuzzing targets ask for less).
        ///
        /// - Throws: as ``Model/load(from:)``.
        init(_ file: SafeTensors, source: String, maximumWeightBytes: Int = SafeTensors.defaultMaximumFileSize) throws {
            func corrupt(_ message: String) -> TopiaryError {
                TopiaryError(.corruptFile, "\(source): \(message)")
            }
            func entry(_ key: String) throws -> String {
                guard let value = file.metadata[key] else { throw corrupt("metadata entry \"\(key)\" is missing") }
                return value
            }
            let format = file.metadata["format"]
            guard format == Model.formatName else {
                throw corrupt(format.map { "not a Topiary model (format \"\($0)\")" } ?? "not a Topiary model (no \"format\" metadata)")
            }
            let versionText = try entry("format_version")
            guard let version = Int(versionText), Model.formatVersions.contains(version) else {
                throw corrupt("model format version \(versionText) is not supported (this Topiary reads versions \(Model.formatVersions.lowerBound) to \(Model.formatVersions.upperBound))")
            }

            let architecture = try entry("architecture")
            let sizes = architecture.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard sizes.count >= 2, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw corrupt("architecture \"\(architecture)\" is not a list of positive sizes such as 784-300-100-10")
            }
            let widths = sizes.map { $0 ?? 0 }
            let layerCount = widths.count - 1
            let activationsText = try entry("activations")
            let activations = activationsText.split(separator: ",", omittingEmptySubsequences: false).map { Activation(rawValue: String($0)) }
            guard activations.count == layerCount else {
                throw corrupt("activations \"\(activationsText)\" name \(activations.count) layers, the architecture has \(layerCount)")
            }
            var encodings = [StoredEncoding](repeating: .dense, count: layerCount)
            if version > 1 {
                let text = try entry(Model.encodingsKey)
                let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard names.count == layerCount else {
                    throw corrupt("\(Model.encodingsKey) \"\(text)\" name \(names.count) layers, the architecture has \(layerCount)")
                }
                for (l, name) in names.enumerated() {
                    guard let e = StoredEncoding(rawValue: name) else {
                        throw corrupt("layer \(l) has an unknown encoding \"\(name)\" (known: \(StoredEncoding.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    encodings[l] = e
                }
            }
            // A compressed layer's size comes from the architecture, not from its bytes: refuse
            // what a dense file could not hold before allocating anything.
            var denseBytes = 0
            for l in 0..<layerCount {
                let (count, overflow) = widths[l].multipliedReportingOverflow(by: widths[l + 1])
                guard !overflow, count < 1 << 31 else {
                    throw TopiaryError(.invalidShape, "\(source): layer \(l) (\(widths[l]) => \(widths[l + 1])) would have more than 2³¹ weights")
                }
                denseBytes += 4 * count
                guard denseBytes <= maximumWeightBytes else {
                    throw TopiaryError(.invalidShape, "\(source): architecture \(architecture) takes more than \(maximumWeightBytes) bytes of weights in memory, the limit of a model file")
                }
            }

            func number(_ key: String) throws -> Float {
                let text = try entry(key)
                guard let value = Float(text), value.isFinite else {
                    throw corrupt("metadata \"\(key)\" is \"\(text)\", expected a finite number")
                }
                return value
            }
            let normalization = Normalization(scale: try number("input_scale"), mean: try number("input_mean"),
                                              std: try number("input_std"))
            guard normalization.isValid else { throw corrupt("input normalization \(normalization) has a zero scale or std") }

            var expected = Set<String>()
            var layers: [LayerCodec.Layer] = []
            for l in 0..<layerCount {
                guard let activation = activations[l] else {
                    throw corrupt("layer \(l) has an unknown activation (known: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                layers.append(try LayerCodec.decode(file, layer: l, input: widths[l], output: widths[l + 1], activation: activation,
                                                    version: version, stored: encodings[l], architecture: architecture,
                                                    source: source, expected: &expected))
            }
            if let extra = file.tensors.keys.filter({ !expected.contains($0) }).sorted().first {
                throw corrupt("unexpected tensor \"\(extra)\" for architecture \(architecture)"
                              + (version > 1 ? " and encodings \(encodings.map(\.rawValue).joined(separator: ","))" : ""))
            }
            func record<T: Decodable>(_ type: T.Type, _ key: String, _ what: String) throws -> T? {
                guard let text = file.metadata[key] else { return nil }
                do {
                    return try JSONDecoder().decode(T.self, from: Data(text.utf8))
                } catch {
                    throw corrupt("metadata \"\(key)\" is not a valid \(what): \(Model.describe(error))")
                }
            }
            let recipe = try record(TrainingRecipe.self, RecordKey.recipe, "training recipe")
            let epoch = try record(Int.self, RecordKey.epoch, "epoch number")
            if let epoch, epoch < 0 { throw corrupt("metadata \"\(RecordKey.epoch)\" is \(epoch), expected an epoch of at least 0") }
            let provenance = try record(PruningProvenance.self, RecordKey.provenance, "pruning provenance")
            self.version = version
            self.architecture = architecture
            self.layers = layers
            self.normalization = normalization
            self.recipe = recipe
            self.epoch = epoch
            self.provenance = provenance
            self.metadata = file.metadata.filter { !Model.reservedMetadataKeys.contains($0.key) }
        }
    }

    // MARK: Typed records

    /// `value` as compact JSON with sorted keys: the same value always gives the same bytes.
    private static func json<T: Encodable>(_ value: T, key: String) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw TopiaryError(.invalidOption, "metadata \"\(key)\" cannot be saved: \(describe(error))")
        }
    }

    /// A short account of a coding error: which field, and what was wrong with it.
    fileprivate static func describe(_ error: Error) -> String {
        func path(_ context: [CodingKey]) -> String {
            context.isEmpty ? "" : " at \"" + context.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") + "\""
        }
        switch error {
        case DecodingError.keyNotFound(let key, let c): return "\"\(key.stringValue)\" is missing\(path(c.codingPath))"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
            return c.debugDescription + path(c.codingPath)
        case EncodingError.invalidValue(let value, let c): return "\(value) cannot be written as JSON\(path(c.codingPath))"
        default: return "\(error)"
        }
    }
}

extension Model: CustomStringConvertible {
    /// The network's table (``Chain/description``), the input normalisation and, when recorded,
    /// how the model was trained and pruned.
    public var description: String {
        var lines = [network.description,
                     "normalization: x · \(normalization.scale), mean \(normalization.mean), std \(normalization.std)"]
        if let recipe {
            lines.append("trained: \(recipe.epochs) epochs, batch \(recipe.batchSize), seed \(recipe.seed)"
                         + (epoch.map { ", saved at epoch \($0)" } ?? ""))
        }
        if let provenance {
            lines.append("pruned from \(provenance.source ?? "an unnamed model"): \(provenance.method), \(provenance.steps) steps")
        }
        return lines.joined(separator: "\n")
    }
}
