/// Not API (`@_spi(Fuzzing)`): every reader of untrusted files, fed bytes, for the libFuzzer
/// targets of the `Fuzz/` package (`scripts/fuzz`, `docs/fuzzing.md`).
///
/// Each entry runs a reader on bytes as it runs on a file's, then checks what it returned. Bad
/// input must end in a thrown ``TopiaryError``; a crash, a trap, a sanitizer report, any other
/// error (a ``Violation`` when a check fails) is a finding. The limits on memory are the readers'
/// own, smaller where a reader takes one, so that a fuzzing run stays within its allocation limit.
@_spi(Fuzzing) public enum Fuzzing {
    /// A check on what a reader returned failed: a bug, not bad input.
    @_spi(Fuzzing) public struct Violation: Error, CustomStringConvertible {
        /// What failed.
        @_spi(Fuzzing) public let description: String
    }

    /// The cap on the bytes of a model's weights once dense (4 GiB for files).
    static let maximumWeightBytes = 1 << 26
    /// The cap on an array (an IDX file's data, a `.npz` member; 1 and 8 GiB for files).
    static let maximumArrayBytes = 1 << 26
    /// The name readers give the input in their messages.
    static let source = "fuzz-input"

    /// A model file (safetensors): the container, every layer in its encoding (dense, masked,
    /// CSR), the model; then the model saved again (automatic encoding) must load back the same,
    /// compile with every layer CSR and run; the same container is also imported as a PyTorch
    /// state dict.
    ///
    /// - Throws: ``TopiaryError`` for bad input; ``Violation`` for a bug.
    ///
    /// Most changes to a header break the tiling of the data, which the container refuses
    /// before the layers are read; so when the container is refused, the layers are still
    /// read from one rebuilt from the header's dtypes, shapes and metadata, the data cycled to
    /// the sizes the shapes need (``rebuilt(_:)``).
    @_spi(Fuzzing) public static func model(_ bytes: [UInt8]) throws {
        let file: SafeTensors
        do {
            file = try SafeTensors(bytes: bytes, source: source)
        } catch let error as TopiaryError {
            guard let rebuilt = rebuilt(bytes) else { throw error }
            file = rebuilt
        }
        try tolerating { _ = try PyTorch.importModel(file, path: source) }
        let contents = try Model.Contents(file, source: source, maximumWeightBytes: maximumWeightBytes)
        let model = Model(contents)
        let saved: [UInt8]
        do {
            saved = try model.safeTensors().serialized()
        } catch {
            throw Violation(description: "a loaded model cannot be saved: \(error)")
        }
        let back: Model
        do {
            back = try Model(safeTensors: SafeTensors(bytes: saved, source: "re-saved"))
        } catch {
            throw Violation(description: "a loaded model, saved again, does not load: \(error)")
        }
        try check(same(model, back), "a loaded model, saved again, loads different")
        // The file's CSR arrays straight into the kernels (what `CompiledNetwork(contentsOf:)` does).
        let plan = try CompiledNetwork(sources: contents.layers.map { layer in
            if case .compressed(let csr) = layer.weight { return .compressed(csr, bias: layer.bias, activation: layer.activation) }
            return .dense(layer.dense())
        }, batchSize: 1, policy: .sparse, threads: 1, variant: nil)
        let input = Matrix(rows: 1, columns: model.network.sizes[0],
                           storage: (0..<model.network.sizes[0]).map { Float($0 % 7) - 3 })
        let output = try plan.predict(input)
        try check(output.rows == 1 && output.columns == model.network.sizes.last, "a compiled model gives \(output.rows)×\(output.columns) outputs")
    }

    /// A `.npy` file: the array, then its elements as inputs and as labels.
    ///
    /// - Throws: ``TopiaryError`` for bad input; ``Violation`` for a bug.
    @_spi(Fuzzing) public static func npy(_ bytes: [UInt8]) throws {
        let array = try NumPyArray.parse(bytes, name: source)
        try check(array.count * array.element.size == array.data.count, "shape \(array.shape) does not match \(array.data.count) data bytes")
        try tolerating { try check(try array.floats().count == array.count, "floats() lost elements") }
        try tolerating { try check(try array.labels().count == array.count, "labels() lost elements") }
    }

    /// A `.npz` archive: every member inflated and parsed, then the archive as a dataset (the
    /// last half of its training rows for validation, standardised).
    ///
    /// - Throws: ``TopiaryError`` for bad input; ``Violation`` for a bug.
    @_spi(Fuzzing) public static func npz(_ bytes: [UInt8]) throws {
        if bytes.starts(with: [0x50, 0x4B]) {
            let zip = try ZipArchive(bytes: bytes, name: source)
            for entry in zip.entries.prefix(16) {
                try tolerating {
                    let data = try zip.contents(of: entry, maximumSize: maximumArrayBytes)
                    try check(data.count == entry.size, "member \(entry.name) gives \(data.count) bytes, not the \(entry.size) it declares")
                    _ = try NumPyArray.parse(data, name: entry.name)
                }
            }
        }
        let arrays = try DatasetFiles.archive(bytes, name: source)
        let data = try DatasetFiles.assemble(arrays, source: source, validationCount: arrays.train.rows / 2, standardize: true,
                                             trainLimit: nil, testLimit: nil, normalization: nil)
        try check(data.train.count + data.validation.count == arrays.train.rows && data.test.count == arrays.test.rows,
                  "a dataset of \(arrays.train.rows) + \(arrays.test.rows) rows loads as \(data.train.count) + \(data.validation.count) + \(data.test.count)")
    }

    /// An IDX file, raw or gzip-compressed.
    ///
    /// - Throws: ``TopiaryError`` for bad input; ``Violation`` for a bug.
    @_spi(Fuzzing) public static func idx(_ bytes: [UInt8]) throws {
        let idx = try IDX(bytes: bytes, source: source, maximumByteCount: maximumArrayBytes)
        try check(idx.dimensions.reduce(1, *) == idx.bytes.count, "dimensions \(idx.dimensions) for \(idx.bytes.count) bytes")
    }

    /// A container with the tensors and metadata the header of `bytes` describes, whatever its
    /// offsets: each tensor of a known dtype and a shape of at most 2²⁰ bytes takes its bytes from
    /// the data cycled (zeros when there is none); `nil` when the header is not a JSON object.
    static func rebuilt(_ bytes: [UInt8]) -> SafeTensors? {
        guard bytes.count >= 10 else { return nil }
        let declared = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared >= 2, declared <= UInt64(bytes.count - 8),
              case .object(let members)? = try? JSONValue.parse(bytes[8..<(8 + Int(declared))]) else { return nil }
        let data = bytes[(8 + Int(declared))...]
        var file = SafeTensors()
        for (name, value) in members {
            guard case .object(let fields) = value else { continue }
            if name == SafeTensors.metadataKey {
                for (key, v) in fields { if case .string(let text) = v { file.metadata[key] = text } }
                continue
            }
            var dtype: SafeTensors.DType?
            var shape: [Int]?
            for (field, v) in fields {
                if field == "dtype", case .string(let text) = v { dtype = SafeTensors.DType(rawValue: text) }
                if field == "shape", case .array(let dims) = v { shape = dims.compactMap(\.nonNegativeInteger) }
            }
            guard let dtype, let shape, shape.count <= 8 else { continue }
            var size = dtype.byteCount
            for d in shape {
                let (p, overflow) = size.multipliedReportingOverflow(by: d)
                guard !overflow, p <= 1 << 20 else { size = -1; break }
                size = p
            }
            guard size >= 0 else { continue }
            let tensorBytes = data.isEmpty ? [UInt8](repeating: 0, count: size)
                                           : (0..<size).map { data[data.startIndex + $0 % data.count] }
            file.tensors[name] = SafeTensors.Tensor(dtype: dtype, shape: shape, bytes: tensorBytes)
        }
        return file
    }

    // MARK: Checks

    private static func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw Violation(description: message()) }
    }

    /// Runs `body`, for which a ``TopiaryError`` is a fine outcome; any other error goes on.
    private static func tolerating(_ body: () throws -> Void) throws {
        do { try body() } catch is TopiaryError {}
    }

    /// Whether two models have bit-identical layers (a missing mask counts as all ones), the
    /// same normalisation, records and metadata.
    private static func same(_ a: Model, _ b: Model) -> Bool {
        func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }
        func mask(_ m: [Float]?, _ count: Int) -> [UInt32] { bits(m ?? [Float](repeating: 1, count: count)) }
        guard a.network.sizes == b.network.sizes, a.normalization == b.normalization, a.recipe == b.recipe,
              a.epoch == b.epoch, a.provenance == b.provenance, a.metadata == b.metadata else { return false }
        return zip(a.network.layers, b.network.layers).allSatisfy { x, y in
            x.activation == y.activation && bits(x.weight.storage) == bits(y.weight.storage) && bits(x.bias) == bits(y.bias)
                && mask(x.mask?.storage, x.weight.count) == mask(y.mask?.storage, y.weight.count)
                && mask(x.biasMask, x.bias.count) == mask(y.biasMask, y.bias.count)
        }
    }
}
