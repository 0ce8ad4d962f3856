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
    /// pass straight into the result, and the gzip checksum is verified.
    ///
    /// - Parameters:
    ///   - path: the file to read.
    ///   - maximumByteCount: a hard cap on the number of elements.
    /// - Throws: ``TopiaryError`` naming `path`: `fileNotFound` if it is missing or unreadable;
    ///   `corruptFile` for a wrong magic number, an unsupported data type, a truncated file,
    ///   trailing bytes or a damaged gzip stream; `invalidShape` for absurd dimensions (or a
    ///   file larger than the largest header plus `maximumByteCount`).
    static func read(_ path: String, maximumByteCount: Int = defaultMaximumByteCount) throws -> IDX {
        // A raw file is at most the largest header (4 + 4 · 8 bytes) and its data; a gzip file is smaller.
        let (limit, overflow) = maximumByteCount.addingReportingOverflow(36)
        let bytes = try FileSystem.readFile(path, maximumSize: overflow ? Int.max : limit)
        return try IDX(bytes: bytes, source: path, maximumByteCount: maximumByteCount)
    }

    /// Parses the bytes of an IDX file, raw or gzip-compressed (detected by the gzip magic
    /// `1f 8b`); `source` names it in errors. ``read(_:maximumByteCount:)`` reads a file with it.
    /// `chunk` is the most bytes handed to zlib at once (the tests use less than 4 GiB).
    ///
    /// - Throws: as ``read(_:maximumByteCount:)``.
    init(bytes: [UInt8], source path: String, maximumByteCount: Int = defaultMaximumByteCount,
         chunk: Int = Int(UInt32.max)) throws {
        if bytes.count >= 2, bytes[0] == 0x1F, bytes[1] == 0x8B {
            self = try bytes.withUnsafeBufferPointer { input in
                let gzip = try Gunzip(input, source: path, chunk: chunk)
                defer { gzip.close() }
                return try Self.decode(path, compressedSize: bytes.count, maximumByteCount: maximumByteCount,
                                       readExactly: { buffer, what in
                                           let n = try gzip.produce(buffer)
                                           guard n == buffer.count else {
                                               throw TopiaryError(.corruptFile, "\(path): truncated: the file ends in the \(what) (\(n) of \(buffer.count) bytes read)")
                                           }
                                       },
                                       atEnd: { dimensions in
                                           // Reading past the end verifies the gzip checksum and finds trailing bytes.
                                           var extra: UInt8 = 0
                                           let n = try withUnsafeMutableBytes(of: &extra) { try gzip.produce($0) }
                                           if n > 0 {
                                               throw TopiaryError(.corruptFile, "\(path): unexpected bytes after the data of dimensions \(dimensions)")
                                           }
                                       })
            }
        } else {
            var position = 0
            self = try Self.decode(path, compressedSize: nil, maximumByteCount: maximumByteCount,
                                   readExactly: { buffer, what in
                                       guard buffer.count <= bytes.count - position else {
                                           throw TopiaryError(.corruptFile, "\(path): truncated: the file ends in the \(what) (\(bytes.count - position) of \(buffer.count) bytes read)")
                                       }
                                       if buffer.count > 0 {
                                           bytes.withUnsafeBytes { raw in
                                               buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[position..<(position + buffer.count)]))
                                           }
                                       }
                                       position += buffer.count
                                   },
                                   remaining: { bytes.count - position },
                                   atEnd: { _ in })
        }
    }

    /// The header, its checks, then the data, from a source of bytes: `readExactly` fills a
    /// buffer or throws; `remaining` (raw files) gives the bytes left; `atEnd` checks that
    /// nothing follows the data. `compressedSize` is the size of a gzip file, `nil` for a raw one.
    private static func decode(_ path: String, compressedSize: Int?, maximumByteCount: Int,
                               readExactly: (UnsafeMutableRawBufferPointer, String) throws -> Void,
                               remaining: () -> Int = { 0 },
                               atEnd: ([Int]) throws -> Void) throws -> IDX {
        var magic: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        try withUnsafeMutableBytes(of: &magic) { try readExactly($0, "magic number") }
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
        try rawDimensions.withUnsafeMutableBytes { try readExactly($0, "dimensions") }
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
        if let compressedSize {
            let (reachable, overflow) = compressedSize.multipliedReportingOverflow(by: maximumDeflateRatio)
            guard overflow || count <= reachable else {
                throw TopiaryError(.corruptFile,
                                   "\(path): IDX dimensions \(dimensions) need \(count) bytes, more than \(compressedSize) compressed bytes can hold")
            }
        } else if count != remaining() {
            throw TopiaryError(.corruptFile, count > remaining()
                ? "\(path): truncated: dimensions \(dimensions) need \(count) bytes of data, the file has \(remaining())"
                : "\(path): \(remaining() - count) unexpected bytes after the data of dimensions \(dimensions)")
        }

        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try readExactly($0, "data") }
        try atEnd(dimensions)
        return IDX(dimensions: dimensions, bytes: bytes)
    }

    /// gzip data in memory, inflated on demand: one member or several concatenated (as `gzip`
    /// and zlib's `gzread` allow), each with its CRC-32 and length checked by zlib. zlib takes
    /// and gives at most `chunk` bytes a call (its counts are 32-bit).
    private final class Gunzip {
        private let stream: UnsafeMutablePointer<z_stream>
        private let input: UnsafeBufferPointer<UInt8>
        private let chunk: Int
        private let source: String
        /// The bytes of `input` handed to zlib so far.
        private var taken = 0
        /// The current member has ended (its checksum verified).
        private var ended = false

        /// Starts inflating `input`, which must outlive the reader.
        init(_ input: UnsafeBufferPointer<UInt8>, source: String, chunk: Int = Int(UInt32.max)) throws {
            self.input = input
            self.source = source
            self.chunk = max(1, chunk)
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard inflateInit2_(stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                stream.deinitialize(count: 1)
                stream.deallocate()
                throw TopiaryError(.corruptFile, "\(source): zlib could not start")
            }
        }

        /// Ends the stream; the reader cannot be used after.
        func close() {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }

        /// Hands zlib the next chunk of input when it has used the last.
        private func refill() {
            guard stream.pointee.avail_in == 0, taken < input.count, let base = input.baseAddress else { return }
            let n = min(chunk, input.count - taken)
            stream.pointee.next_in = UnsafeMutablePointer(mutating: base + taken)
            stream.pointee.avail_in = uInt(n)
            taken += n
        }

        /// Fills `buffer` and returns its size, or returns fewer bytes only where the last
        /// member ends cleanly with no input after it.
        ///
        /// - Throws: `corruptFile` for damaged or truncated data, or bytes after a member that
        ///   do not start another.
        func produce(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            guard let base = buffer.baseAddress else { return 0 }
            var done = 0
            while done < buffer.count {
                refill()
                if ended {
                    let left = Int(stream.pointee.avail_in) + input.count - taken
                    guard left > 0 else { return done }
                    // The next member's magic, even where a chunk boundary splits it.
                    let at = taken - Int(stream.pointee.avail_in)
                    guard left >= 2, input[at] == 0x1F, input[at + 1] == 0x8B else {
                        throw TopiaryError(.corruptFile, "\(source): \(left) unexpected bytes after the gzip stream")
                    }
                    inflateReset(stream)
                    ended = false
                }
                let n = min(buffer.count - done, chunk)
                stream.pointee.next_out = (base + done).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(n)
                let status = inflate(stream, Z_NO_FLUSH)
                done += n - Int(stream.pointee.avail_out)
                switch status {
                case Z_OK: continue
                case Z_STREAM_END: ended = true
                case Z_BUF_ERROR where stream.pointee.avail_in == 0 && taken < input.count: continue
                case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                    throw TopiaryError(.corruptFile, "\(source): truncated: the gzip stream ends before its checksum")
                default:
                    let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                    throw TopiaryError(.corruptFile, "\(source): damaged gzip stream (\(message))")
                }
            }
            return done
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }
}
