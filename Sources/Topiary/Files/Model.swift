import Foundation

/// A network with everything needed to use it: the input normalization it was trained with,
/// typed records of how it was made, and free-form metadata. Saved as a safetensors file.
///
/// The file holds, for each layer `N` (input first), the tensors `layers.N.weight` (`F32`,
/// `[out, in]`), `layers.N.bias` (`F32`, `[out]`) and, for a pruned layer,
/// `layers.N.mask` (`U8`, `[out, in]`, entries 0 or 1) and, only when some of its biases are
/// pruned, `layers.N.bias_mask` (`U8`, `[out]`; a file without it has every bias kept, and an
/// all-ones bias mask is not written back). Its `__metadata__` holds
/// `format` (`topiary`), `format_version` (`1`), `architecture` (`784-300-100-10`),
/// `activations` (`relu,relu,identity`), `input_scale`, `input_mean`, `input_std` (shortest
/// round-trip decimal `Float`s), the typed records when present — `training_recipe`
/// (``TrainingRecipe`` as JSON), `training_epoch` (an integer) and `pruning_provenance`
/// (``PruningProvenance`` as JSON) — and the user's metadata.
///
/// Saving and loading is exact: weights, biases, masks and the typed records keep their values,
/// and re-saving a loaded model gives a byte-identical file. Files written before the typed
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
    /// The value of the `format_version` metadata entry this version writes and reads.
    static let formatVersion = "1"
    /// The metadata keys Topiary writes itself; user metadata cannot use them.
    static let reservedMetadataKeys: Set<String> = [
        "format", "format_version", "architecture", "activations", "input_scale", "input_mean", "input_std",
        RecordKey.recipe, RecordKey.epoch, RecordKey.provenance,
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

    /// The model as a safetensors container.
    ///
    /// - Throws: `invalidOption` when user metadata uses a reserved key, the normalization is not
    ///   invertible, a typed record holds a non-finite number or the epoch is negative;
    ///   `nonFinite` when a weight or bias is NaN or infinite.
    func safeTensors() throws -> SafeTensors {
        if let key = metadata.keys.filter({ Self.reservedMetadataKeys.contains($0) }).sorted().first {
            throw TopiaryError(.invalidOption, "metadata key \"\(key)\" is reserved for Topiary's own entries")
        }
        guard normalization.isValid else {
            throw TopiaryError(.invalidOption, "normalization \(normalization) is not invertible (non-finite, or zero scale or std)")
        }
        var file = SafeTensors(metadata: metadata)
        file.metadata["format"] = Self.formatName
        file.metadata["format_version"] = Self.formatVersion
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
        for (l, layer) in network.layers.enumerated() {
            guard layer.weight.isFinite, layer.bias.allSatisfy(\.isFinite) else {
                throw TopiaryError(.nonFinite, "layer \(l) holds NaN or infinite parameters; the model is not saved")
            }
            let shape = [layer.outputSize, layer.inputSize]
            file.tensors["layers.\(l).weight"] = .init(float32: layer.weight.storage, shape: shape)
            file.tensors["layers.\(l).bias"] = .init(float32: layer.bias, shape: [layer.outputSize])
            if let mask = layer.mask {
                file.tensors["layers.\(l).mask"] = .init(uint8: mask.storage.map { $0 != 0 ? 1 : 0 }, shape: shape)
            }
            if layer.hasPrunedBiases, let biasMask = layer.biasMask {
                file.tensors["layers.\(l).bias_mask"] = .init(uint8: biasMask.map { $0 != 0 ? 1 : 0 },
                                                              shape: [layer.outputSize])
            }
        }
        return file
    }

    /// Saves the model to `path` atomically (a temporary file in the same folder, then `rename`).
    ///
    /// - Throws: `writeFailed` naming `path`, or the errors of `safeTensors()`.
    public func save(to path: String) throws {
        try safeTensors().write(to: path)
    }

    // MARK: Loading

    /// Loads and validates the model saved at `path`.
    ///
    /// - Throws: `fileNotFound` if it is missing; `corruptFile` naming `path` for a damaged
    ///   container, missing or malformed metadata, a tensor of the wrong dtype or shape, layers
    ///   that do not chain, unexpected tensors, mask entries other than 0 and 1, a non-zero
    ///   weight (bias) where the mask (bias mask) is 0;
    ///   `nonFinite` for NaN or infinite parameters.
    public static func load(from path: String) throws -> Model {
        try Model(safeTensors: try SafeTensors.read(from: path), source: path)
    }

    /// Builds and validates a model from a safetensors container; `source` names it in errors.
    ///
    /// - Throws: as ``load(from:)``.
    init(safeTensors file: SafeTensors, source: String = "model") throws {
        func corrupt(_ message: String) -> TopiaryError {
            TopiaryError(.corruptFile, "\(source): \(message)")
        }
        func entry(_ key: String) throws -> String {
            guard let value = file.metadata[key] else { throw corrupt("metadata entry \"\(key)\" is missing") }
            return value
        }
        let format = file.metadata["format"]
        guard format == Self.formatName else {
            throw corrupt(format.map { "not a Topiary model (format \"\($0)\")" } ?? "not a Topiary model (no \"format\" metadata)")
        }
        let version = try entry("format_version")
        guard version == Self.formatVersion else {
            throw corrupt("model format version \(version) is not supported (this Topiary reads version \(Self.formatVersion))")
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
        var layers: [Dense] = []
        for l in 0..<layerCount {
            guard let activation = activations[l] else {
                throw corrupt("layer \(l) has an unknown activation (known: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let (input, output) = (widths[l], widths[l + 1])
            func tensor(_ kind: String, _ dtype: SafeTensors.DType, _ shape: [Int], required: Bool = true) throws -> SafeTensors.Tensor? {
                let name = "layers.\(l).\(kind)"
                expected.insert(name)
                guard let t = file.tensors[name] else {
                    if required { throw corrupt("tensor \"\(name)\" is missing") }
                    return nil
                }
                guard t.dtype == dtype, t.shape == shape else {
                    throw corrupt("tensor \"\(name)\" is \(t.dtype.rawValue) \(t.shape), expected \(dtype.rawValue) \(shape) for architecture \(architecture)")
                }
                return t
            }
            guard let weightValues = try tensor("weight", .float32, [output, input])?.float32Values,
                  let biasValues = try tensor("bias", .float32, [output])?.float32Values else {
                throw corrupt("layer \(l) lacks its weight or bias")
            }
            guard weightValues.allSatisfy(\.isFinite), biasValues.allSatisfy(\.isFinite) else {
                throw TopiaryError(.nonFinite, "\(source): layer \(l) holds NaN or infinite parameters")
            }
            let weight = Matrix(rows: output, columns: input, storage: weightValues)
            let biasMaskBytes = try tensor("bias_mask", .uint8, [output], required: false)?.uint8Values
            var biasMask: [Float]?
            if let biasMaskBytes {
                if let j = biasMaskBytes.firstIndex(where: { $0 > 1 }) {
                    throw corrupt("layers.\(l).bias_mask holds \(biasMaskBytes[j]) at index \(j); masks hold only 0 and 1")
                }
                if let j = biasMaskBytes.indices.first(where: { biasMaskBytes[$0] == 0 && biasValues[$0] != 0 }) {
                    throw corrupt("layers.\(l).bias is \(biasValues[j]) at index \(j), where the bias mask prunes it (must be 0)")
                }
                biasMask = biasMaskBytes.map { Float($0) }
            }
            var mask: Matrix?
            if let maskBytes = try tensor("mask", .uint8, [output, input], required: false)?.uint8Values {
                if let i = maskBytes.firstIndex(where: { $0 > 1 }) {
                    throw corrupt("layers.\(l).mask holds \(maskBytes[i]) at index \(i); masks hold only 0 and 1")
                }
                if let i = maskBytes.indices.first(where: { maskBytes[$0] == 0 && weightValues[$0] != 0 }) {
                    throw corrupt("layers.\(l).weight is \(weightValues[i]) at index \(i), where the mask prunes it (must be 0)")
                }
                mask = Matrix(rows: output, columns: input, storage: maskBytes.map { Float($0) })
            }
            layers.append(Dense(checkedWeight: weight, bias: biasValues, activation: activation,
                                mask: mask, biasMask: biasMask))
        }
        if let extra = file.tensors.keys.filter({ !expected.contains($0) }).sorted().first {
            throw corrupt("unexpected tensor \"\(extra)\" for architecture \(architecture)")
        }
        func record<T: Decodable>(_ type: T.Type, _ key: String, _ what: String) throws -> T? {
            guard let text = file.metadata[key] else { return nil }
            do {
                return try JSONDecoder().decode(T.self, from: Data(text.utf8))
            } catch {
                throw corrupt("metadata \"\(key)\" is not a valid \(what): \(Self.describe(error))")
            }
        }
        let recipe = try record(TrainingRecipe.self, RecordKey.recipe, "training recipe")
        let epoch = try record(Int.self, RecordKey.epoch, "epoch number")
        if let epoch, epoch < 0 { throw corrupt("metadata \"\(RecordKey.epoch)\" is \(epoch), expected an epoch of at least 0") }
        let provenance = try record(PruningProvenance.self, RecordKey.provenance, "pruning provenance")
        self.init(network: Chain(checked: layers), normalization: normalization, recipe: recipe, epoch: epoch,
                  provenance: provenance, metadata: file.metadata.filter { !Self.reservedMetadataKeys.contains($0.key) })
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
    private static func describe(_ error: Error) -> String {
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
