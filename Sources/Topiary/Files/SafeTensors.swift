/// A safetensors container: named tensors of raw little-endian data plus string metadata.
///
/// The layout (<https://github.com/huggingface/safetensors>) is an 8-byte little-endian header
/// length `N`, then `N` bytes of JSON header mapping each tensor name to its `dtype`, `shape`
/// and `data_offsets` (`[begin, end)` within the data that follows), with an optional
/// `"__metadata__"` object of strings; then the data.
///
/// Writing is deterministic: tensors are laid out in the byte order of their names, the JSON is
/// written without whitespace with keys in a fixed order, and the header is padded with spaces
/// to a multiple of 8 bytes, so equal contents give byte-identical files. Files are written
/// atomically (a temporary file in the same folder, then `rename`).
///
/// Reading is strict: every length, offset and shape is checked against the real file size
/// before anything is allocated, the tensors must tile the data exactly, and any problem is a
/// ``TopiaryError`` (`corruptFile`), never a crash.
///
/// ```swift
/// var file = SafeTensors(metadata: ["format": "example"])
/// file.tensors["w"] = SafeTensors.Tensor(float32: [1, 2, 3, 4, 5, 6], shape: [2, 3])
/// try file.write(to: "w.safetensors")
/// let back = try SafeTensors.read(from: "w.safetensors")
/// back.tensors["w"]?.float32Values   // [1, 2, 3, 4, 5, 6]
/// ```
struct SafeTensors: Equatable, Sendable {
    /// The element type of a tensor, with its safetensors name.
    enum DType: String, CaseIterable, Sendable {
        /// Booleans, one byte each.
        case bool = "BOOL"
        /// Unsigned 8-bit integers.
        case uint8 = "U8"
        /// Signed 8-bit integers.
        case int8 = "I8"
        /// Unsigned 16-bit integers.
        case uint16 = "U16"
        /// Signed 16-bit integers.
        case int16 = "I16"
        /// Unsigned 32-bit integers.
        case uint32 = "U32"
        /// Signed 32-bit integers.
        case int32 = "I32"
        /// Unsigned 64-bit integers.
        case uint64 = "U64"
        /// Signed 64-bit integers.
        case int64 = "I64"
        /// IEEE half-precision floats.
        case float16 = "F16"
        /// Brain floats (16 bits).
        case bfloat16 = "BF16"
        /// IEEE single-precision floats.
        case float32 = "F32"
        /// IEEE double-precision floats.
        case float64 = "F64"
        /// 8-bit floats, E4M3.
        case float8E4M3 = "F8_E4M3"
        /// 8-bit floats, E5M2.
        case float8E5M2 = "F8_E5M2"

        /// The size of one element in bytes.
        var byteCount: Int {
            switch self {
            case .bool, .uint8, .int8, .float8E4M3, .float8E5M2: return 1
            case .uint16, .int16, .float16, .bfloat16: return 2
            case .uint32, .int32, .float32: return 4
            case .uint64, .int64, .float64: return 8
            }
        }
    }

    /// One tensor: element type, shape and raw little-endian bytes.
    struct Tensor: Equatable, Sendable {
        /// The element type.
        let dtype: DType
        /// The dimensions, outermost first (`[]` for a scalar).
        let shape: [Int]
        /// The elements in row-major order, little-endian; `bytes.count == elementCount × dtype.byteCount`.
        let bytes: [UInt8]

        /// Creates a tensor from raw little-endian bytes.
        ///
        /// - Precondition: dimensions are non-negative and `bytes` holds exactly the elements.
        init(dtype: DType, shape: [Int], bytes: [UInt8]) {
            require(shape.allSatisfy { $0 >= 0 }, "SafeTensors.Tensor: negative dimension in \(shape)")
            require(shape.reduce(1, *) * dtype.byteCount == bytes.count,
                         "SafeTensors.Tensor: \(bytes.count) bytes do not hold a \(dtype.rawValue) tensor of shape \(shape)")
            self.dtype = dtype
            self.shape = shape
            self.bytes = bytes
        }

        /// Creates an `F32` tensor.
        ///
        /// - Precondition: `values.count` is the product of `shape`.
        init(float32 values: [Float], shape: [Int]) {
            let bits = values.map { $0.bitPattern.littleEndian }
            self.init(dtype: .float32, shape: shape, bytes: bits.withUnsafeBytes { Array($0) })
        }

        /// Creates a `U8` tensor.
        ///
        /// - Precondition: `values.count` is the product of `shape`.
        init(uint8 values: [UInt8], shape: [Int]) {
            self.init(dtype: .uint8, shape: shape, bytes: values)
        }

        /// The number of elements, the product of ``shape``.
        var elementCount: Int { shape.reduce(1, *) }

        /// The elements as `Float`s when the tensor is `F32`, else `nil`.
        var float32Values: [Float]? {
            guard dtype == .float32 else { return nil }
            let count = bytes.count / 4
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
        }

        /// The elements when the tensor is `U8`, else `nil`.
        var uint8Values: [UInt8]? { dtype == .uint8 ? bytes : nil }

        /// Creates a tensor of little-endian integers; `dtype` must be an integer type of
        /// `T`'s width (`U16` for `UInt16`, `I32` for `Int32`, …).
        ///
        /// - Precondition: `values.count` is the product of `shape`.
        init<T: FixedWidthInteger>(integers values: [T], dtype: DType, shape: [Int]) {
            require(MemoryLayout<T>.size == dtype.byteCount,
                    "SafeTensors.Tensor: \(T.self) does not have the width of \(dtype.rawValue)")
            let le = values.map(\.littleEndian)
            self.init(dtype: dtype, shape: shape, bytes: le.withUnsafeBytes { Array($0) })
        }

        /// Creates an `F16` tensor from the bit patterns of IEEE half-precision numbers.
        ///
        /// - Precondition: `bits.count` is the product of `shape`.
        init(float16Bits bits: [UInt16], shape: [Int]) {
            self.init(integers: bits, dtype: .float16, shape: shape)
        }

        /// The elements read as little-endian `T`s, whatever the dtype of that width (the
        /// caller checks the dtype first).
        ///
        /// - Precondition: `T` has the width of ``dtype``.
        func integers<T: FixedWidthInteger>(_ type: T.Type) -> [T] {
            require(MemoryLayout<T>.size == dtype.byteCount,
                    "SafeTensors.Tensor: \(T.self) does not have the width of \(dtype.rawValue)")
            let count = bytes.count / MemoryLayout<T>.size
            return bytes.withUnsafeBytes { raw in
                (0..<count).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<T>.size * $0, as: T.self)) }
            }
        }
    }

    /// The tensors by name.
    var tensors: [String: Tensor]
    /// Free-form string metadata (the header's `"__metadata__"`).
    var metadata: [String: String]

    /// Creates a container.
    init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The key of the metadata object in the header; no tensor may have this name.
    static let metadataKey = "__metadata__"
    /// The largest header ``read(from:maximumFileSize:)`` accepts: 100 MB, as the reference implementation.
    static let maximumHeaderSize = 100_000_000
    /// The largest file ``read(from:maximumFileSize:)`` accepts by default: 4 GiB.
    static let defaultMaximumFileSize = 1 << 32

    // MARK: Writing

    /// The file's bytes: header length, padded JSON header, then the data of the tensors in the
    /// byte order of their names. Equal contents give equal bytes.
    ///
    /// - Throws: `invalidOption` if a tensor is named `"__metadata__"`.
    func serialized() throws -> [UInt8] {
        guard tensors[Self.metadataKey] == nil else {
            throw TopiaryError(.invalidOption, "a tensor cannot be named \(Self.metadataKey)")
        }
        let names = tensors.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var header = "{"
        var entries: [String] = []
        if !metadata.isEmpty {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let body = keys.map { JSONValue.quoted($0) + ":" + JSONValue.quoted(metadata[$0] ?? "") }
            entries.append(JSONValue.quoted(Self.metadataKey) + ":{" + body.joined(separator: ",") + "}")
        }
        var offset = 0
        var dataSize = 0
        for name in names {
            guard let t = tensors[name] else { continue }
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append(JSONValue.quoted(name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
            dataSize += t.bytes.count
        }
        header += entries.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }

        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + dataSize)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in names {
            if let t = tensors[name] { out.append(contentsOf: t.bytes) }
        }
        return out
    }

    /// Writes the container to `path` atomically: a temporary file in the same folder is
    /// written, flushed and renamed over `path`, so an interrupted save never destroys a good file.
    ///
    /// - Throws: `writeFailed` naming `path` when the folder is missing or not writable or the
    ///   disk is full; `invalidOption` for a tensor named `"__metadata__"`.
    func write(to path: String) throws {
        try FileSystem.writeAtomically(try serialized(), to: path)
    }

    // MARK: Reading

    /// Reads and validates the file at `path`.
    ///
    /// - Throws: `fileNotFound` if it is missing; `invalidShape` if it is larger than
    ///   `maximumFileSize`; `corruptFile` (naming `path`) for any malformed header, unknown
    ///   dtype, out-of-range, overlapping or non-contiguous offsets, or a shape that does not
    ///   match its byte length.
    static func read(from path: String, maximumFileSize: Int = defaultMaximumFileSize) throws -> SafeTensors {
        let bytes = try FileSystem.readFile(path, maximumSize: maximumFileSize)
        return try SafeTensors(bytes: bytes, source: path)
    }

    /// Parses and validates a container from its bytes; `source` names it in error messages.
    ///
    /// - Throws: `corruptFile`, as ``read(from:maximumFileSize:)``.
    init(bytes: [UInt8], source: String = "safetensors data") throws {
        func corrupt(_ message: String) -> TopiaryError {
            TopiaryError(.corruptFile, "\(source): \(message)")
        }
        guard bytes.count >= 8 else {
            throw corrupt("too short for a safetensors file (\(bytes.count) bytes, the header length alone takes 8)")
        }
        let declared = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(bytes.count - 8) else {
            throw corrupt("header length \(declared) exceeds the \(bytes.count - 8) bytes after it")
        }
        let headerSize = Int(declared)
        guard headerSize <= Self.maximumHeaderSize else {
            throw corrupt("header length \(headerSize) exceeds the limit of \(Self.maximumHeaderSize) bytes")
        }
        guard headerSize >= 2, bytes[8] == UInt8(ascii: "{") else {
            throw corrupt("the header is not a JSON object")
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes[8..<(8 + headerSize)])
        } catch let e as JSONValue.ParseError {
            throw corrupt("malformed JSON header at byte \(8 + e.offset): \(e.message)")
        }
        guard case .object(let members) = json else { throw corrupt("the header is not a JSON object") }

        let dataStart = 8 + headerSize
        let dataSize = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in members {
            if name == Self.metadataKey {
                guard case .object(let pairs) = value else { throw corrupt("\(Self.metadataKey) is \(value.kindName), expected an object") }
                for (key, v) in pairs {
                    guard case .string(let s) = v else {
                        throw corrupt("metadata \"\(key)\" is \(v.kindName), expected a string")
                    }
                    metadata[key] = s
                }
                continue
            }
            guard case .object(let fields) = value else { throw corrupt("tensor \"\(name)\" is \(value.kindName), expected an object") }
            var dtype: DType?
            var shape: [Int]?
            var offsets: (Int, Int)?
            for (field, v) in fields {
                switch field {
                case "dtype":
                    guard case .string(let s) = v, let d = DType(rawValue: s) else {
                        throw corrupt("tensor \"\(name)\" has an unknown dtype \(v)")
                    }
                    dtype = d
                case "shape":
                    guard case .array(let dims) = v else { throw corrupt("tensor \"\(name)\": shape is \(v.kindName), expected an array") }
                    shape = try dims.map {
                        guard let d = $0.nonNegativeInteger else {
                            throw corrupt("tensor \"\(name)\": shape holds \($0), expected non-negative integers")
                        }
                        return d
                    }
                case "data_offsets":
                    guard case .array(let pair) = v, pair.count == 2,
                          let begin = pair[0].nonNegativeInteger, let end = pair[1].nonNegativeInteger else {
                        throw corrupt("tensor \"\(name)\": data_offsets must be two non-negative integers")
                    }
                    offsets = (begin, end)
                default:
                    throw corrupt("tensor \"\(name)\" has an unknown field \"\(field)\"")
                }
            }
            guard let dtype, let shape, let offsets else {
                throw corrupt("tensor \"\(name)\" lacks one of dtype, shape, data_offsets")
            }
            let (begin, end) = offsets
            guard begin <= end, end <= dataSize else {
                throw corrupt("tensor \"\(name)\": data_offsets [\(begin), \(end)] fall outside the \(dataSize) data bytes")
            }
            var size = dtype.byteCount
            for d in shape {
                let (p, overflow) = size.multipliedReportingOverflow(by: d)
                guard !overflow, p <= dataSize else {
                    throw corrupt("tensor \"\(name)\": shape \(shape) of \(dtype.rawValue) is larger than the \(dataSize) data bytes")
                }
                size = p
            }
            guard size == end - begin else {
                throw corrupt("tensor \"\(name)\": shape \(shape) of \(dtype.rawValue) needs \(size) bytes, data_offsets give \(end - begin)")
            }
            entries.append((name, dtype, shape, begin, end))
        }

        // The tensors must tile the data: sorted by offset, each starts where the previous ends.
        let sorted = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var position = 0
        for e in sorted {
            guard e.begin == position else {
                throw corrupt(e.begin < position
                    ? "tensor \"\(e.name)\" at [\(e.begin), \(e.end)] overlaps the previous tensor (which ends at \(position))"
                    : "gap of \(e.begin - position) bytes before tensor \"\(e.name)\" at [\(e.begin), \(e.end)]")
            }
            position = e.end
        }
        guard position == dataSize else {
            throw corrupt("\(dataSize - position) data bytes after the last tensor are not described by the header")
        }

        var tensors: [String: Tensor] = [:]
        for e in entries {
            tensors[e.name] = Tensor(dtype: e.dtype, shape: e.shape,
                                     bytes: Array(bytes[(dataStart + e.begin)..<(dataStart + e.end)]))
        }
        self.init(tensors: tensors, metadata: metadata)
    }
}
