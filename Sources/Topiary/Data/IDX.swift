import CZlib

/// An array read from an IDX file, the format of MNIST and Fashion-MNIST: its dimensions and
/// its unsigned bytes in row-major order.
///
/// The format is a 4-byte magic number `00 00 08 NN` (`08`: unsigned bytes, `NN`: the number of
/// dimensions), then `NN` big-endian `UInt32` dimensions, then the data. Files may be
/// gzip-compressed (detected by the gzip magic `1f 8b`, not by the name).
///
/// ```swift
/// let images = try IDX.read("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
/// images.dimensions   // [10000, 28, 28]
/// images.bytes.count  // 7_840_000
/// ```
struct IDX: Sendable {
    /// The dimensions, outermost first (`[60000, 28, 28]` for the training images).
    var dimensions: [Int]
    /// The elements in row-major order; `bytes.count` is the product of `dimensions`.
    var bytes: [UInt8]

    /// Creates an array from its dimensions and elements.
    ///
    /// - Precondition: `bytes.count` is the product of `dimensions`.
    init(dimensions: [Int], bytes: [UInt8]) {
        require(dimensions.reduce(1, *) == bytes.count,
                     "IDX: \(bytes.count) bytes do not fill dimensions \(dimensions)")
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// The largest array ``read(_:maximumByteCount:)`` accepts by default: 1 GiB.
    static let defaultMaximumByteCount = 1 << 30

    /// The largest ratio of decompressed to compressed size that deflate can reach (about 1032:1).
    static let maximumDeflateRatio = 1032

    /// Reads an IDX file of unsigned bytes, raw or gzip-compressed.
    ///
    /// The header is checked before anything is allocated: the product of the dimensions must
    /// not exceed `maximumByteCount`, must equal the remaining length of a raw file, and must
    /// be reachable from the compressed length of a gzip file. The data is decompressed in one
    /// streaming pass straight into the result, and the gzip checksum is verified.
    ///
    /// - Parameters:
    ///   - path: the file to read.
    ///   - maximumByteCount: a hard cap on the number of elements.
    /// - Throws: ``TopiaryError`` naming `path`: `fileNotFound` if it is missing or unreadable;
    ///   `corruptFile` for a wrong magic number, an unsupported data type, a truncated file,
    ///   trailing bytes or a damaged gzip stream; `invalidShape` for absurd dimensions.
    static func read(_ path: String, maximumByteCount: Int = defaultMaximumByteCount) throws -> IDX {
        let fileSize = try FileSystem.fileSize(path)
        guard let file = gzopen(path, "rb") else {
            throw TopiaryError(.fileNotFound, "\(path): cannot be opened (\(FileSystem.errorString()))")
        }
        defer { gzclose(file) }
        _ = gzbuffer(file, 1 << 17)

        func readExactly(_ buffer: UnsafeMutableRawBufferPointer, what: String) throws {
            var done = 0
            while done < buffer.count, let base = buffer.baseAddress {
                let chunk = UInt32(min(buffer.count - done, 1 << 30))
                let n = Int(gzread(file, base + done, chunk))
                if n < 0 { throw streamError(file, path) }
                if n == 0 {
                    throw TopiaryError(.corruptFile,
                                       "\(path): truncated: the file ends in the \(what) (\(done) of \(buffer.count) bytes read)")
                }
                done += n
            }
        }

        var magic: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        try withUnsafeMutableBytes(of: &magic) { try readExactly($0, what: "magic number") }
        let compressed = gzdirect(file) == 0
        guard magic.0 == 0, magic.1 == 0 else {
            throw TopiaryError(.corruptFile,
                               "\(path): not an IDX file (magic number \(hex(magic.0)) \(hex(magic.1)) \(hex(magic.2)) \(hex(magic.3)), expected 00 00 08 NN)")
        }
        guard magic.2 == 0x08 else {
            throw TopiaryError(.corruptFile,
                               "\(path): unsupported IDX data type 0x\(hex(magic.2)); only unsigned bytes (0x08) are supported")
        }
        let rank = Int(magic.3)
        guard (1...8).contains(rank) else {
            throw TopiaryError(.corruptFile, "\(path): IDX header declares \(rank) dimensions, expected 1 to 8")
        }

        var rawDimensions = [UInt32](repeating: 0, count: rank)
        try rawDimensions.withUnsafeMutableBytes { try readExactly($0, what: "dimensions") }
        let dimensions = rawDimensions.map { Int(UInt32(bigEndian: $0)) }
        var count = 1
        for d in dimensions {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maximumByteCount else {
                throw TopiaryError(.invalidShape,
                                   "\(path): IDX dimensions \(dimensions) describe more than the limit of \(maximumByteCount) bytes")
            }
            count = product
        }
        let headerSize = 4 + 4 * rank
        if compressed {
            guard count <= fileSize * maximumDeflateRatio else {
                throw TopiaryError(.corruptFile,
                                   "\(path): IDX dimensions \(dimensions) need \(count) bytes, more than \(fileSize) compressed bytes can hold")
            }
        } else if count != fileSize - headerSize {
            throw TopiaryError(.corruptFile, count > fileSize - headerSize
                ? "\(path): truncated: dimensions \(dimensions) need \(count) bytes of data, the file has \(fileSize - headerSize)"
                : "\(path): \(fileSize - headerSize - count) unexpected bytes after the data of dimensions \(dimensions)")
        }

        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try readExactly($0, what: "data") }
        // Reading past the end verifies the gzip checksum and finds trailing garbage.
        var extra: UInt8 = 0
        let n = gzread(file, &extra, 1)
        if n < 0 { throw streamError(file, path) }
        if n > 0 { throw TopiaryError(.corruptFile, "\(path): unexpected bytes after the data of dimensions \(dimensions)") }
        // An incomplete gzip stream is not an error of gzread (it is deferred to gzclose): ask gzerror.
        var code: Int32 = Z_OK
        _ = gzerror(file, &code)
        if code == Z_BUF_ERROR {
            throw TopiaryError(.corruptFile, "\(path): truncated: the gzip stream ends before its checksum")
        }
        return IDX(dimensions: dimensions, bytes: bytes)
    }

    private static func streamError(_ file: gzFile, _ path: String) -> TopiaryError {
        var code: Int32 = 0
        let message = gzerror(file, &code).map { String(cString: $0) } ?? "unknown error"
        if code == Z_ERRNO {
            return TopiaryError(.corruptFile, "\(path): read failed (\(FileSystem.errorString()))")
        }
        return TopiaryError(.corruptFile, "\(path): damaged gzip stream (\(message))")
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }
}
