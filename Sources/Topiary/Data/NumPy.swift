/// Not API: an array read from NumPy's `.npy` format (versions 1.0, 2.0 and 3.0), as published
/// in NumPy's `numpy.lib.format`: the magic `\x93NUMPY`, a major and minor version byte, the
/// header length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0), then a Python dict literal
/// with `descr`, `fortran_order` and `shape`, padded with spaces and a newline, then the data.
struct NumPyArray {
    /// The element types Topiary reads.
    enum Element: String {
        case bool = "b1", uint8 = "u1", int8 = "i1", uint16 = "u2", int16 = "i2", uint32 = "u4", int32 = "i4"
        case uint64 = "u8", int64 = "i8", float32 = "f4", float64 = "f8"

        var size: Int {
            switch self {
            case .bool, .uint8, .int8: return 1
            case .uint16, .int16: return 2
            case .uint32, .int32, .float32: return 4
            case .uint64, .int64, .float64: return 8
            }
        }

        var isInteger: Bool { self != .float32 && self != .float64 }
    }

    var shape: [Int]
    var element: Element
    /// The data, little-endian, C order.
    var data: ArraySlice<UInt8>
    /// The file (or archive member) it came from, for errors.
    var name: String

    /// The number of elements (the product of the shape; 1 for a scalar).
    var count: Int { shape.reduce(1, *) }

    /// Parses a whole `.npy` file; `name` names it in errors. Refuses, before allocating anything,
    /// a bad magic or version, a header past the end, a `descr` Topiary does not read (big-endian,
    /// strings, objects, structured), Fortran order, a shape whose product overflows or whose data
    /// is not exactly the bytes that follow.
    static func parse(_ bytes: [UInt8], name: String) throws -> NumPyArray {
        func corrupt(_ message: String) -> TopiaryError { TopiaryError(.corruptFile, "\(name): \(message)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw corrupt("not a .npy file (no \\x93NUMPY magic)") }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw corrupt("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw corrupt("format version \(major).\(bytes[7]) is not one of 1.0, 2.0, 3.0")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw corrupt("the header claims \(headerLength) bytes, past the end of the file (\(bytes.count) bytes)")
        }
        let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
        guard let header = String(bytes: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw corrupt("the header is not text")
        }
        let fields = try parseHeader(header, corrupt: corrupt)
        guard case .string(let descr)? = fields["descr"] else { throw corrupt("the header has no 'descr' string") }
        guard case .bool(let fortran)? = fields["fortran_order"] else { throw corrupt("the header has no 'fortran_order'") }
        guard case .tuple(let shape)? = fields["shape"] else { throw corrupt("the header has no 'shape' tuple") }
        let element = try Self.element(descr, corrupt: corrupt)
        guard !fortran else { throw corrupt("Fortran-order arrays are not supported; save it with np.ascontiguousarray") }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, d >= 0 else { throw corrupt("shape \(shape) is too large") }
            count = product
        }
        let (size, overflow) = count.multipliedReportingOverflow(by: element.size)
        let dataStart = headerStart + headerLength
        guard !overflow, size == bytes.count - dataStart else {
            throw corrupt("shape \(shape) of \(descr) needs \(overflow ? "more than Int.max" : String(size)) bytes of data, the file has \(bytes.count - dataStart)")
        }
        return NumPyArray(shape: shape, element: element, data: bytes[dataStart...], name: name)
    }

    private static func element(_ descr: String, corrupt: (String) -> TopiaryError) throws -> Element {
        // '<f4' little-endian, '|u1' no byte order, '=' native (little on the machines Topiary runs on).
        guard let order = descr.first, descr.count == 3 else { throw corrupt("dtype '\(descr)' is not supported (numbers only)") }
        let code = String(descr.dropFirst())
        guard let element = Element(rawValue: code) else {
            throw corrupt("dtype '\(descr)' is not supported: use uint8, int8–int64, uint16–uint64, float32, float64 or bool")
        }
        switch order {
        case "<", "|", "=": return element
        case ">" where element.size == 1: return element
        default: throw corrupt("dtype '\(descr)' is big-endian; save it with .astype('<\(code)')")
        }
    }

    private enum Value {
        case string(String)
        case bool(Bool)
        case tuple([Int])
    }

    /// Parses the header's Python dict literal: string keys; string, `True`/`False` or tuple-of-int values.
    private static func parseHeader(_ text: String, corrupt: (String) -> TopiaryError) throws -> [String: Value] {
        var chars = Array(text.unicodeScalars)[...]
        func skipSpace() { while let c = chars.first, c == " " || c == "\n" || c == "\t" || c == "\r" { chars.removeFirst() } }
        func expect(_ c: Unicode.Scalar) throws {
            skipSpace()
            guard chars.first == c else { throw corrupt("malformed header: expected '\(c)' in \(text.prefix(200))") }
            chars.removeFirst()
        }
        func string() throws -> String {
            skipSpace()
            guard let quote = chars.first, quote == "'" || quote == "\"" else { throw corrupt("malformed header: expected a string in \(text.prefix(200))") }
            chars.removeFirst()
            var out = ""
            while let c = chars.first, c != quote {
                out.unicodeScalars.append(c)
                chars.removeFirst()
                guard out.count <= 1000 else { throw corrupt("malformed header: a string too long") }
            }
            try expect(quote)
            return out
        }
        try expect("{")
        var fields: [String: Value] = [:]
        while true {
            skipSpace()
            if chars.first == "}" { chars.removeFirst(); break }
            let key = try string()
            try expect(":")
            skipSpace()
            switch chars.first {
            case "'", "\"": fields[key] = .string(try string())
            case "T", "F":
                let word = String(String.UnicodeScalarView(chars.prefix { $0.properties.isAlphabetic }))
                chars.removeFirst(word.unicodeScalars.count)
                guard word == "True" || word == "False" else { throw corrupt("malformed header: '\(word)'") }
                fields[key] = .bool(word == "True")
            case "(":
                chars.removeFirst()
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if chars.first == ")" { chars.removeFirst(); break }
                    let digits = String(String.UnicodeScalarView(chars.prefix { $0.properties.numericType != nil }))
                    guard !digits.isEmpty, digits.count <= 18, let d = Int(digits) else { throw corrupt("malformed header: shape in \(text.prefix(200))") }
                    chars.removeFirst(digits.unicodeScalars.count)
                    dims.append(d)
                    guard dims.count <= 32 else { throw corrupt("shape has more than 32 dimensions") }
                    skipSpace()
                    if chars.first == "," { chars.removeFirst() }
                }
                fields[key] = .tuple(dims)
            default:
                throw corrupt("malformed header: unexpected value for '\(key)' in \(text.prefix(200))")
            }
            skipSpace()
            if chars.first == "," { chars.removeFirst() }
        }
        return fields
    }

    /// The elements as `Float` (integers and booleans converted), refusing NaN and infinities.
    func floats() throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        let n = count
        try data.withUnsafeBytes { raw in
            for i in 0..<n {
                let v: Float
                switch element {
                case .bool, .uint8: v = Float(raw[i])
                case .int8: v = Float(Int8(bitPattern: raw[i]))
                case .uint16: v = Float(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)
                case .int16: v = Float(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self).littleEndian)
                case .uint32: v = Float(raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                case .int32: v = Float(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self).littleEndian)
                case .uint64: v = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)
                case .int64: v = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self).littleEndian)
                case .float32: v = Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                case .float64: v = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian))
                }
                guard v.isFinite else { throw TopiaryError(.nonFinite, "\(name): element \(i) is \(v) (NaN or infinite values are refused)") }
                out[i] = v
            }
        }
        return out
    }

    /// The elements as class labels: integers in `0..<limit`.
    func labels(limit: Int = 1 << 16) throws -> [Int32] {
        guard element.isInteger else {
            throw TopiaryError(.corruptFile, "\(name): labels must be integers, the array holds \(element)")
        }
        var out = [Int32](repeating: 0, count: count)
        let n = count
        try data.withUnsafeBytes { raw in
            for i in 0..<n {
                let v: Int64
                switch element {
                case .bool, .uint8: v = Int64(raw[i])
                case .int8: v = Int64(Int8(bitPattern: raw[i]))
                case .uint16: v = Int64(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)
                case .int16: v = Int64(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self).littleEndian)
                case .uint32: v = Int64(raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                case .int32: v = Int64(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self).littleEndian)
                case .uint64: v = Int64(clamping: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)
                case .int64: v = raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self).littleEndian
                case .float32, .float64: v = -1
                }
                guard v >= 0, v < Int64(limit) else {
                    throw TopiaryError(.corruptFile, "\(name): label \(v) at index \(i) is outside 0...\(limit - 1)")
                }
                out[i] = Int32(v)
            }
        }
        return out
    }
}
