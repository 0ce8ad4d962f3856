/// How ``Model/save(to:encoding:halfPrecision:)`` stores the weights of each layer.
///
/// A layer can be stored three ways, and a file records which one each layer uses (its
/// `layer_encodings` metadata entry); every file loads the same way, whatever its encodings:
///
/// - **dense**: the weight in full, `layers.N.weight` (`F32`, `[out, in]`), and no mask. A layer
///   that was never pruned (``Dense/mask`` is `nil`) is always stored so.
/// - **masked**: the weight in full plus the mask as packed bits, `layers.N.mask` (`U8`,
///   `[⌈out·in / 8⌉]`): one bit per weight, row-major, the first weight in the least
///   significant bit of the first byte (NumPy's `packbits(mask, bitorder="little")`); the
///   unused bits of the last byte are 0. About 4.1 bytes per weight.
/// - **compressed** (CSR): only the weights the mask keeps. `layers.N.values` (`F32`, or `F16`
///   with `halfPrecision`, `[nnz]`), `layers.N.col_indices` (`U16` when the layer has at most
///   65,536 inputs, else `I32`, `[nnz]`, increasing within a row) and `layers.N.row_offsets`
///   (`I32`, or `I64` beyond 2³¹ − 1 entries, `[out + 1]`: row `i` holds entries
///   `row_offsets[i] ..< row_offsets[i + 1]`). The stored pattern *is* the mask: a kept weight
///   that happens to be `0.0` is stored as an explicit zero, so the mask survives exactly. About
///   6 bytes per kept weight with `F32` values and 4 with `F16`.
///
/// Every encoding stores `layers.N.bias` (`F32`, `[out]`) and, when some bias is pruned,
/// `layers.N.bias_mask` (packed bits, `[⌈out / 8⌉]`).
///
/// Conversions between the masked and compressed encodings are exact: weights, biases and masks
/// load bit for bit, and saving a loaded model again with the same encoding gives the same bytes.
/// The dense encoding keeps weights and biases exactly but has no masks: a pruned layer saved
/// ``dense`` loads unpruned, its pruned weights zeros that training can revive.
///
/// ```swift
/// try model.save(to: "small.safetensors")                              // .automatic
/// try model.save(to: "plain.safetensors", encoding: .dense)            // no masks, any safetensors reader
/// try model.save(to: "f16.safetensors", encoding: .compressed, halfPrecision: true)
/// ```
public enum LayerEncoding: Sendable {
    /// Dense for a layer without a mask; for a pruned one, masked or compressed, whichever takes
    /// fewer bytes (compressed from about 32% sparsity with `F32` values). The default.
    case automatic
    /// Every weight, no masks (a plain state dict); pruned layers load unpruned.
    case dense
    /// Every weight plus a one-bit-per-weight mask, for pruned layers.
    case masked
    /// The kept weights in CSR form, for pruned layers.
    case compressed
}

/// Not API: how one layer is stored, with the names `layer_encodings` uses.
enum StoredEncoding: String, CaseIterable, Sendable {
    case dense
    case masked
    case csr
}

/// Not API: masks as packed bits, one bit per entry, least significant bit first.
enum PackedBits {
    /// The number of bytes `count` bits take.
    static func byteCount(_ count: Int) -> Int { count / 8 + (count % 8 == 0 ? 0 : 1) }

    /// Packs the entries of a 0/1 mask (`true` for every entry that is not zero).
    static func pack(_ mask: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: byteCount(mask.count))
        mask.withUnsafeBufferPointer { m in
            for i in 0..<m.count where m[i] != 0 { bytes[i >> 3] |= 1 << UInt8(i & 7) }
        }
        return bytes
    }

    /// The `count` entries (`0` or `1`) packed in `bytes`, or a description of what is wrong:
    /// the wrong number of bytes, or a padding bit set.
    static func unpack(_ bytes: [UInt8], count: Int) -> Result<[Float], Problem> {
        guard bytes.count == byteCount(count) else { return .failure(.byteCount(bytes.count, expected: byteCount(count))) }
        if count % 8 != 0, let last = bytes.last, last >> UInt8(count % 8) != 0 {
            return .failure(.paddingSet)
        }
        var mask = [Float](repeating: 0, count: count)
        mask.withUnsafeMutableBufferPointer { m in
            for i in 0..<count where bytes[i >> 3] & (1 << UInt8(i & 7)) != 0 { m[i] = 1 }
        }
        return .success(mask)
    }

    /// What is wrong with a packed mask.
    enum Problem: Error {
        case byteCount(Int, expected: Int)
        case paddingSet
    }
}

/// Not API: the tensors of one layer in each encoding, written and read.
enum LayerCodec {
    /// Bytes of the weight tensors of `layer` stored masked.
    static func maskedBytes(_ layer: Dense) -> Int {
        4 * layer.weight.count + PackedBits.byteCount(layer.weight.count)
    }

    /// Bytes of the weight tensors of `layer` stored in CSR form.
    static func compressedBytes(_ layer: Dense, halfPrecision: Bool) -> Int {
        let kept = layer.keptCount
        let index = layer.inputSize <= CSRMatrix.narrowColumnLimit ? 2 : 4
        let offset = kept <= Int(Int32.max) ? 4 : 8
        return kept * ((halfPrecision ? 2 : 4) + index) + (layer.outputSize + 1) * offset
    }

    /// How `layer` is stored when `encoding` is asked for: layers without a mask are always
    /// dense; ``LayerEncoding/automatic`` takes the smaller of masked and compressed (masked on a tie).
    static func choose(_ encoding: LayerEncoding, for layer: Dense, halfPrecision: Bool) -> StoredEncoding {
        guard layer.mask != nil else { return .dense }
        switch encoding {
        case .dense: return .dense
        case .masked: return .masked
        case .compressed: return .csr
        case .automatic:
            return compressedBytes(layer, halfPrecision: halfPrecision) < maskedBytes(layer) ? .csr : .masked
        }
    }

    /// The name of tensor `kind` of layer `l`.
    static func name(_ l: Int, _ kind: String) -> String { "layers.\(l).\(kind)" }

    /// Adds layer `l`'s tensors, stored as `stored`, to a file of format `version`: masks are one
    /// byte per entry in version 1 (whose layers are all dense or, for the tests of old files,
    /// masked) and packed bits in version 2. `withMasks` false drops the bias mask too (the
    /// dense encoding asked for).
    ///
    /// - Throws: `invalidOption` when a weight is too large for `F16`.
    static func encode(_ layer: Dense, index l: Int, as stored: StoredEncoding, version: Int, withMasks: Bool,
                       halfPrecision: Bool, into file: inout SafeTensors) throws {
        let (out, input) = (layer.outputSize, layer.inputSize)
        func maskTensor(_ mask: [Float], shape: [Int]) -> SafeTensors.Tensor {
            version == 1 ? .init(uint8: mask.map { $0 != 0 ? 1 : 0 }, shape: shape)
                         : .init(uint8: PackedBits.pack(mask), shape: [PackedBits.byteCount(mask.count)])
        }
        file.tensors[name(l, "bias")] = .init(float32: layer.bias, shape: [out])
        if withMasks, layer.hasPrunedBiases, let biasMask = layer.biasMask {
            file.tensors[name(l, "bias_mask")] = maskTensor(biasMask, shape: [out])
        }
        switch stored {
        case .dense:
            file.tensors[name(l, "weight")] = .init(float32: layer.weight.storage, shape: [out, input])
        case .masked:
            let mask = layer.mask?.storage ?? [Float](repeating: 1, count: layer.weight.count)
            file.tensors[name(l, "weight")] = .init(float32: layer.weight.storage, shape: [out, input])
            file.tensors[name(l, "mask")] = maskTensor(mask, shape: [out, input])
        case .csr:
            let kept = layer.keptCount
            var values: [Float] = []
            var columns: [Int] = []
            var offsets: [Int] = [0]
            values.reserveCapacity(kept)
            columns.reserveCapacity(kept)
            offsets.reserveCapacity(out + 1)
            let mask = layer.mask?.storage
            layer.weight.storage.withUnsafeBufferPointer { w in
                for i in 0..<out {
                    for j in 0..<input where mask.map({ $0[i * input + j] != 0 }) ?? true {
                        values.append(w[i * input + j])
                        columns.append(j)
                    }
                    offsets.append(values.count)
                }
            }
            let nnz = values.count
            if halfPrecision {
                var bits: [UInt16] = []
                bits.reserveCapacity(nnz)
                for (p, v) in values.enumerated() {
                    let h = Float16(v)
                    guard h.isFinite else {
                        throw TopiaryError(.invalidOption, "layer \(l): weight \(v) (entry \(p)) is beyond F16's range (±65504); save with F32 values")
                    }
                    bits.append(h.bitPattern)
                }
                file.tensors[name(l, "values")] = .init(float16Bits: bits, shape: [nnz])
            } else {
                file.tensors[name(l, "values")] = .init(float32: values, shape: [nnz])
            }
            file.tensors[name(l, "col_indices")] = input <= CSRMatrix.narrowColumnLimit
                ? .init(integers: columns.map { UInt16(truncatingIfNeeded: $0) }, dtype: .uint16, shape: [nnz])
                : .init(integers: columns.map { Int32(truncatingIfNeeded: $0) }, dtype: .int32, shape: [nnz])
            file.tensors[name(l, "row_offsets")] = nnz <= Int(Int32.max)
                ? .init(integers: offsets.map { Int32(truncatingIfNeeded: $0) }, dtype: .int32, shape: [out + 1])
                : .init(integers: offsets.map { Int64($0) }, dtype: .int64, shape: [out + 1])
        }
    }

    // MARK: Reading

    /// A layer's weight read from a file: in full (dense or masked), or in CSR form.
    enum Weight {
        /// `[out, in]` row-major, with the mask for a masked layer.
        case full(weight: [Float], mask: [Float]?)
        /// The kept entries; the stored pattern is the mask.
        case compressed(CSRMatrix)
    }

    /// One layer as a file holds it, validated.
    struct Layer {
        var weight: Weight
        var bias: [Float]
        var biasMask: [Float]?
        var activation: Activation
        var stored: StoredEncoding
        var inputSize: Int
        var outputSize: Int

        /// The layer with its weight in full (a compressed weight is expanded, its pattern
        /// becoming the mask).
        func dense() -> Dense {
            let weightMatrix: Matrix
            let mask: Matrix?
            switch weight {
            case .full(let w, let m):
                weightMatrix = Matrix(rows: outputSize, columns: inputSize, storage: w)
                mask = m.map { Matrix(rows: outputSize, columns: inputSize, storage: $0) }
            case .compressed(let csr):
                var w = [Float](repeating: 0, count: outputSize * inputSize)
                var m = [Float](repeating: 0, count: outputSize * inputSize)
                for i in 0..<outputSize {
                    for p in csr.offsets[i]..<csr.offsets[i + 1] {
                        let at = i * inputSize + csr.indices[p]
                        w[at] = csr.values[p]
                        m[at] = 1
                    }
                }
                weightMatrix = Matrix(rows: outputSize, columns: inputSize, storage: w)
                mask = Matrix(rows: outputSize, columns: inputSize, storage: m)
            }
            return Dense(checkedWeight: weightMatrix, bias: bias, activation: activation, mask: mask, biasMask: biasMask)
        }

        /// The number of weights the file stores or keeps (all of them for a dense layer).
        var keptCount: Int {
            switch weight {
            case .full(let w, let m): return m.map { $0.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } } ?? w.count
            case .compressed(let csr): return csr.nonzeroCount
            }
        }

        /// The number of weights that are not exactly zero.
        var nonzeroCount: Int {
            switch weight {
            case .full(let w, _): return w.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            case .compressed(let csr): return csr.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            }
        }
    }

    /// Reads and validates layer `l` (`input => output`) of a file of format `version`, stored as
    /// `stored`, recording the names of the tensors it reads in `expected`.
    ///
    /// - Throws: `corruptFile` naming `source` for a missing tensor or one of the wrong dtype or
    ///   shape, a mask of the wrong size or with entries other than 0 and 1 (padding bits set),
    ///   a non-zero weight or bias where its mask is 0, CSR row offsets that do not start at 0,
    ///   decrease or do not end at the number of values, column indices out of range or not
    ///   increasing within a row; `nonFinite` for NaN or infinite weights or biases.
    static func decode(_ file: SafeTensors, layer l: Int, input: Int, output: Int, activation: Activation,
                       version: Int, stored: StoredEncoding, architecture: String, source: String,
                       expected: inout Set<String>) throws -> Layer {
        func corrupt(_ message: String) -> TopiaryError { TopiaryError(.corruptFile, "\(source): \(message)") }
        func tensor(_ kind: String, required: Bool = true) throws -> SafeTensors.Tensor? {
            let n = name(l, kind)
            expected.insert(n)
            guard let t = file.tensors[n] else {
                if required { throw corrupt("tensor \"\(n)\" is missing (layer \(l) is stored \(stored.rawValue))") }
                return nil
            }
            return t
        }
        func check(_ t: SafeTensors.Tensor, _ kind: String, _ dtypes: [SafeTensors.DType], _ shape: [Int]) throws {
            guard dtypes.contains(t.dtype), t.shape == shape else {
                let types = dtypes.map(\.rawValue).joined(separator: " or ")
                throw corrupt("tensor \"\(name(l, kind))\" is \(t.dtype.rawValue) \(t.shape), expected \(types) \(shape) for architecture \(architecture)")
            }
        }
        func finite(_ values: [Float], _ kind: String) throws {
            if let p = values.firstIndex(where: { !$0.isFinite }) {
                throw TopiaryError(.nonFinite, "\(source): \(name(l, kind)) holds \(values[p]) at index \(p); weights and biases must be finite")
            }
        }
        /// A mask: one byte per entry in version 1, packed bits in version 2.
        func mask(_ t: SafeTensors.Tensor, _ kind: String, count: Int, shape1: [Int]) throws -> [Float] {
            if version == 1 {
                try check(t, kind, [.uint8], shape1)
                if let i = t.bytes.firstIndex(where: { $0 > 1 }) {
                    throw corrupt("\(name(l, kind)) holds \(t.bytes[i]) at index \(i); masks hold only 0 and 1")
                }
                return t.bytes.map { Float($0) }
            }
            let bytes = PackedBits.byteCount(count)
            guard t.dtype == .uint8, t.shape == [bytes] else {
                throw corrupt("tensor \"\(name(l, kind))\" is \(t.dtype.rawValue) \(t.shape), expected U8 [\(bytes)]: \(count) mask bits packed 8 to a byte for architecture \(architecture)")
            }
            switch PackedBits.unpack(t.bytes, count: count) {
            case .success(let m): return m
            case .failure(.paddingSet):
                throw corrupt("\(name(l, kind)) sets bits beyond its \(count) entries (the unused bits of the last byte must be 0)")
            case .failure(.byteCount(let got, let want)):
                throw corrupt("\(name(l, kind)) has \(got) bytes, expected \(want) for \(count) bits")
            }
        }

        guard let biasTensor = try tensor("bias") else { throw corrupt("layer \(l) lacks its bias") }
        try check(biasTensor, "bias", [.float32], [output])
        let bias = biasTensor.float32Values ?? []
        try finite(bias, "bias")
        var biasMask: [Float]?
        if let t = try tensor("bias_mask", required: false) {
            let m = try mask(t, "bias_mask", count: output, shape1: [output])
            if let j = m.indices.first(where: { m[$0] == 0 && bias[$0] != 0 }) {
                throw corrupt("\(name(l, "bias")) is \(bias[j]) at index \(j), where the bias mask prunes it (must be 0)")
            }
            biasMask = m
        }

        let weight: Weight
        switch stored {
        case .dense, .masked:
            guard let w = try tensor("weight") else { throw corrupt("layer \(l) lacks its weight") }
            try check(w, "weight", [.float32], [output, input])
            let values = w.float32Values ?? []
            try finite(values, "weight")
            var weightMask: [Float]?
            // Version 1 has no encodings: a layer is masked when it has a mask tensor.
            let maskTensor = stored == .masked || version == 1 ? try tensor("mask", required: version > 1) : nil
            if let maskTensor {
                let m = try mask(maskTensor, "mask", count: output * input, shape1: [output, input])
                if let i = m.indices.first(where: { m[$0] == 0 && values[$0] != 0 }) {
                    throw corrupt("\(name(l, "weight")) is \(values[i]) at index \(i), where the mask prunes it (must be 0)")
                }
                weightMask = m
            }
            weight = .full(weight: values, mask: weightMask)
        case .csr:
            guard let v = try tensor("values"), let c = try tensor("col_indices"), let r = try tensor("row_offsets") else {
                throw corrupt("layer \(l) lacks its CSR tensors")
            }
            guard v.shape.count == 1 else {
                throw corrupt("tensor \"\(name(l, "values"))\" has shape \(v.shape), expected one dimension (the kept weights)")
            }
            let nnz = v.shape[0]
            try check(v, "values", [.float32, .float16], [nnz])
            try check(c, "col_indices", input <= CSRMatrix.narrowColumnLimit ? [.uint16, .int32] : [.int32], [nnz])
            try check(r, "row_offsets", [.int32, .int64], [output + 1])
            let values: [Float] = v.dtype == .float32
                ? v.float32Values ?? []
                : v.integers(UInt16.self).map { Float(Float16(bitPattern: $0)) }
            try finite(values, "values")
            let offsets: [Int] = r.dtype == .int32 ? r.integers(Int32.self).map(Int.init) : r.integers(Int64.self).map(Int.init)
            let offsetsName = name(l, "row_offsets"), indicesName = name(l, "col_indices")
            guard offsets[0] == 0 else { throw corrupt("\(offsetsName) starts at \(offsets[0]), expected 0") }
            for i in 0..<output where offsets[i] > offsets[i + 1] {
                throw corrupt("\(offsetsName) decrease at row \(i) (\(offsets[i]) then \(offsets[i + 1]))")
            }
            guard offsets[output] == nnz else {
                throw corrupt("\(offsetsName) ends at \(offsets[output]), but \(name(l, "values")) holds \(nnz) entries")
            }
            let columns: CSRMatrix.Indices
            if c.dtype == .uint16 {
                columns = .narrow(c.integers(UInt16.self))
            } else {
                let wide = c.integers(Int32.self)
                if let p = wide.firstIndex(where: { $0 < 0 }) {
                    throw corrupt("\(indicesName) holds \(wide[p]) at entry \(p); column indices are 0 to \(input - 1)")
                }
                columns = .wide(wide.map { UInt32(truncatingIfNeeded: $0) })
            }
            for i in 0..<output {
                var previous = -1
                for p in offsets[i]..<offsets[i + 1] {
                    let j = columns[p]
                    guard j < input else {
                        throw corrupt("\(indicesName) holds \(j) in row \(i) (entry \(p)), out of range for \(input) inputs")
                    }
                    guard j > previous else {
                        throw corrupt("\(indicesName) in row \(i) are not strictly increasing (\(previous) then \(j) at entry \(p)): unsorted or duplicated")
                    }
                    previous = j
                }
            }
            weight = .compressed(CSRMatrix(unchecked: output, columns: input, offsets: offsets, indices: columns, values: values))
        }
        return Layer(weight: weight, bias: bias, biasMask: biasMask, activation: activation, stored: stored,
                     inputSize: input, outputSize: output)
    }
}
