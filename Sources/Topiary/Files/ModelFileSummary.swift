/// Not API: what a model file holds and what its bytes pay for, layer by layer — the report of
/// `topiary inspect` and `topiary export`.
@_spi(Files) public struct ModelFileSummary: Encodable, Sendable {
    /// One layer of the file.
    @_spi(Files) public struct Layer: Encodable, Sendable {
        /// The layer's position, input first.
        public let index: Int
        /// Inputs of the layer.
        public let input: Int
        /// Outputs of the layer.
        public let output: Int
        /// How the file stores the weights: `dense`, `masked` or `csr`.
        public let encoding: String
        /// The dtype of the stored weight values (`F32`, or `F16` for compressed values).
        public let values: String
        /// What locates the weights besides their values: `1 bit per weight` for a mask,
        /// the dtypes of the column indices and row offsets for CSR, `none` for a dense layer.
        public let index_kind: String
        /// `input × output`.
        public let weights: Int
        /// Weights the mask keeps (every weight of a dense layer).
        public let kept: Int
        /// Weights that are not exactly zero.
        public let nonzeros: Int
        /// `1 − nonzeros / weights`.
        public let sparsity: Double
        /// Data bytes of the layer's tensors, biases included.
        public let bytes: Int
        /// Bytes of the stored weight values.
        public let value_bytes: Int
        /// Bytes of the mask, or of the column indices and row offsets.
        public let index_bytes: Int
        /// Bytes of the bias and bias mask.
        public let bias_bytes: Int
    }

    /// The file.
    public let path: String
    /// Its `format_version`.
    public let format_version: Int
    /// Its architecture, `784-300-100-10`.
    public let architecture: String
    /// Its layers.
    public let layers: [Layer]
    /// The file's size.
    public let bytes: Int
    /// The header: 8 bytes of length and the JSON with the metadata.
    public let header_bytes: Int
    /// The size of the same model saved with the dense encoding.
    public let dense_bytes: Int
    /// `bytes / dense_bytes`.
    public let ratio_to_dense: Double
    /// Weights that are not exactly zero, over all layers.
    public let nonzero_weights: Int
    /// `bytes / nonzero_weights`: what a non-zero weight costs, all overheads included (4 for
    /// its `F32` value alone).
    public let bytes_per_nonzero: Double
    /// `bytes / (4 · nonzero_weights)`: the file against the values of its non-zero weights alone.
    public let ratio_to_nonzero_values: Double
    /// Mask, column-index and row-offset bytes, over all layers.
    public let index_bytes: Int
    /// Bias and bias-mask bytes, over all layers.
    public let bias_bytes: Int
}

extension Model {
    /// Reads, validates and summarises the model file at `path`.
    ///
    /// - Throws: as ``Model/load(from:)``.
    @_spi(Files) public static func summary(ofFile path: String) throws -> ModelFileSummary {
        let file = try SafeTensors.read(from: path)
        let contents = try Contents(file, source: path)
        let size = try FileSystem.fileSize(path)
        let dense = try Model(contents).safeTensors(encoding: .dense).serialized().count
        var layers: [ModelFileSummary.Layer] = []
        for (l, layer) in contents.layers.enumerated() {
            func bytes(_ kinds: [String]) -> Int {
                kinds.reduce(0) { $0 + (file.tensors[LayerCodec.name(l, $1)]?.bytes.count ?? 0) }
            }
            let values: String, index: String, valueBytes: Int, indexBytes: Int
            switch layer.stored {
            case .dense:
                (values, index, valueBytes, indexBytes) = ("F32", "none", bytes(["weight"]), bytes(["mask"]))
            case .masked:
                (values, index, valueBytes, indexBytes) = ("F32", "1 bit per weight", bytes(["weight"]), bytes(["mask"]))
            case .csr:
                let dtype = { (kind: String) in file.tensors[LayerCodec.name(l, kind)]?.dtype.rawValue ?? "?" }
                (values, index, valueBytes, indexBytes) = (dtype("values"), "\(dtype("col_indices")) columns, \(dtype("row_offsets")) offsets",
                                                           bytes(["values"]), bytes(["col_indices", "row_offsets"]))
            }
            let weights = layer.inputSize * layer.outputSize
            let nonzeros = layer.nonzeroCount
            let biasBytes = bytes(["bias", "bias_mask"])
            // A version-1 file's dense layer may carry a one-byte mask: it is index, not value.
            let stored = contents.version == 1 && indexBytes > 0 ? "masked" : layer.stored.rawValue
            layers.append(.init(index: l, input: layer.inputSize, output: layer.outputSize, encoding: stored,
                                values: values, index_kind: contents.version == 1 && indexBytes > 0 ? "1 byte per weight" : index,
                                weights: weights, kept: layer.keptCount, nonzeros: nonzeros,
                                sparsity: weights == 0 ? 0 : 1 - Double(nonzeros) / Double(weights),
                                bytes: valueBytes + indexBytes + biasBytes, value_bytes: valueBytes,
                                index_bytes: indexBytes, bias_bytes: biasBytes))
        }
        let nonzeros = layers.reduce(0) { $0 + $1.nonzeros }
        let tensorBytes = file.tensors.values.reduce(0) { $0 + $1.bytes.count }
        return ModelFileSummary(path: path, format_version: contents.version, architecture: contents.architecture, layers: layers,
                                bytes: size, header_bytes: size - tensorBytes, dense_bytes: dense,
                                ratio_to_dense: Double(size) / Double(max(1, dense)), nonzero_weights: nonzeros,
                                bytes_per_nonzero: Double(size) / Double(max(1, nonzeros)),
                                ratio_to_nonzero_values: Double(size) / Double(4 * max(1, nonzeros)),
                                index_bytes: layers.reduce(0) { $0 + $1.index_bytes },
                                bias_bytes: layers.reduce(0) { $0 + $1.bias_bytes })
    }
}
