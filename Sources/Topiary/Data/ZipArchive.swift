import CZlib

/// Not API: the members of a ZIP archive held in memory (what `numpy.savez` and
/// `numpy.savez_compressed` write): the end-of-central-directory record (and its ZIP64 form),
/// the central directory with ZIP64 size fields, members stored or deflated, CRC-32 checked.
///
/// Every size is checked against the archive before anything is allocated; a deflated member is
/// inflated into exactly the size the directory declares, so a member that inflates past it (a
/// deflate bomb) is refused after at most that many bytes.
struct ZipArchive {
    struct Entry {
        var name: String
        var method: UInt16
        var flags: UInt16
        var crc: UInt32
        var compressedSize: Int
        var size: Int
        var localHeaderOffset: Int
    }

    let bytes: [UInt8]
    let name: String
    private(set) var entries: [Entry] = []

    private func corrupt(_ message: String) -> TopiaryError { TopiaryError(.corruptFile, "\(name): \(message)") }

    private func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    private func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
    private func u64(_ at: Int) throws -> Int {
        let v = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        guard v <= UInt64(Int.max) else { throw corrupt("a size or offset of \(v) bytes") }
        return Int(v)
    }

    /// Reads the central directory of the archive `bytes`; `name` names it in errors.
    init(bytes: [UInt8], name: String) throws {
        self.bytes = bytes
        self.name = name
        // The end-of-central-directory record: the last signature within 22 + 65,535 bytes of the end.
        guard bytes.count >= 22 else { throw corrupt("not a ZIP archive (\(bytes.count) bytes)") }
        var eocd = -1
        var i = bytes.count - 22
        while i >= max(0, bytes.count - 22 - 65_535) {
            if bytes[i] == 0x50, bytes[i + 1] == 0x4B, bytes[i + 2] == 0x05, bytes[i + 3] == 0x06 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw corrupt("not a ZIP archive, or its end record is missing (truncated?)") }
        var count = u16(eocd + 10), directorySize = u32(eocd + 12), directoryOffset = u32(eocd + 16)
        // ZIP64: a locator just before the record points at the ZIP64 end record.
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            let locator = eocd - 20
            guard locator >= 0, u32(locator) == 0x0706_4B50 else { throw corrupt("ZIP64 sizes without a ZIP64 locator") }
            let record = try u64(locator + 8)
            guard record <= bytes.count - 56, u32(record) == 0x0606_4B50 else { throw corrupt("the ZIP64 end record is missing") }
            count = try u64(record + 32)
            directorySize = try u64(record + 40)
            directoryOffset = try u64(record + 48)
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw corrupt("the central directory (\(directorySize) bytes at \(directoryOffset)) lies past the end: truncated")
        }
        guard count <= directorySize / 46 else { throw corrupt("\(count) members cannot fit a \(directorySize)-byte directory") }
        var at = directoryOffset
        let end = directoryOffset + directorySize
        for _ in 0..<count {
            guard at + 46 <= end, u32(at) == 0x0201_4B50 else { throw corrupt("damaged central directory at byte \(at)") }
            let nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32)
            guard at + 46 + nameLength + extraLength + commentLength <= end else { throw corrupt("damaged central directory at byte \(at)") }
            var entry = Entry(name: String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self),
                              method: UInt16(u16(at + 10)), flags: UInt16(u16(at + 8)), crc: UInt32(u32(at + 16)),
                              compressedSize: u32(at + 20), size: u32(at + 24), localHeaderOffset: u32(at + 42))
            // ZIP64 extra field: the 64-bit values of the fields that hold 0xFFFFFFFF, in this order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = u16(extra), size = u16(extra + 2)
                guard extra + 4 + size <= extraEnd else { throw corrupt("damaged extra field of \(entry.name)") }
                if id == 0x0001 {
                    var field = extra + 4
                    for keyPath in [\Entry.size, \Entry.compressedSize, \Entry.localHeaderOffset] where entry[keyPath: keyPath] == 0xFFFF_FFFF {
                        guard field + 8 <= extra + 4 + size else { throw corrupt("damaged ZIP64 field of \(entry.name)") }
                        entry[keyPath: keyPath] = try u64(field)
                        field += 8
                    }
                }
                extra += 4 + size
            }
            entries.append(entry)
            at += 46 + nameLength + extraLength + commentLength
        }
    }

    /// The most bytes zlib reads or writes in one call: its counts are 32-bit (`uInt`), and a
    /// member may be larger.
    static let zlibChunk = Int(UInt32.max)

    /// The uncompressed bytes of `entry`, refusing encryption, methods other than stored and
    /// deflate, data past the archive, a size that disagrees with the data, and a bad CRC-32.
    /// `chunk` is the most bytes handed to zlib at once (``zlibChunk``; the tests use less).
    func contents(of entry: Entry, maximumSize: Int, chunk: Int = zlibChunk) throws -> [UInt8] {
        let what = "\(name): member \(entry.name)"
        guard entry.flags & 1 == 0 else { throw corrupt("member \(entry.name) is encrypted") }
        guard entry.size <= maximumSize else {
            throw TopiaryError(.invalidShape, "\(what) declares \(entry.size) bytes; Topiary refuses more than \(maximumSize)")
        }
        let local = entry.localHeaderOffset
        guard local <= bytes.count - 30, u32(local) == 0x0403_4B50 else { throw corrupt("member \(entry.name): its local header is missing") }
        let start = local + 30 + u16(local + 26) + u16(local + 28)
        guard start <= bytes.count, entry.compressedSize <= bytes.count - start else {
            throw corrupt("member \(entry.name): its \(entry.compressedSize) bytes lie past the end of the archive (truncated)")
        }
        let data = bytes[start..<(start + entry.compressedSize)]
        var out: [UInt8]
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.size else {
                throw TopiaryError(.corruptFile, "\(what) is stored with \(entry.compressedSize) bytes but declares \(entry.size)")
            }
            out = Array(data)
        case 8:
            // Deflate cannot shrink data more than about 1032 times: refuse a declared size beyond that.
            guard entry.size <= max(1 << 16, entry.compressedSize.multipliedReportingOverflow(by: 1100).partialValue) else {
                throw TopiaryError(.corruptFile, "\(what) declares \(entry.size) bytes from \(entry.compressedSize) compressed: more than deflate can give")
            }
            out = try Self.inflate(data, size: entry.size, what: what, chunk: max(1, chunk))
        default:
            throw TopiaryError(.corruptFile, "\(what) uses compression method \(entry.method); only stored (0) and deflate (8) are read")
        }
        let crc = out.withUnsafeBufferPointer { b in
            var crc = crc32(0, nil, 0)
            var at = 0
            while at < b.count, let base = b.baseAddress {
                let n = min(max(1, chunk), b.count - at)
                crc = crc32(crc, base + at, uInt(n))
                at += n
            }
            return UInt32(crc)
        }
        guard crc == entry.crc else { throw TopiaryError(.corruptFile, "\(what) fails its CRC-32 check (damaged)") }
        return out
    }

    /// How inflating a member ended.
    private enum Inflated {
        case exact
        case short(Int)
        case past
        case failed(Int32)
    }

    /// Inflates raw deflate `data` into exactly `size` bytes, handing zlib at most `chunk` bytes
    /// of input and of output at a time.
    private static func inflate(_ data: ArraySlice<UInt8>, size: Int, what: String, chunk: Int) throws -> [UInt8] {
        // One byte more than declared: a member that fills it inflates past its size (a bomb).
        var out = [UInt8](repeating: 0, count: size + 1)
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deinitialize(count: 1); stream.deallocate() }
        guard inflateInit2_(stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw TopiaryError(.corruptFile, "\(what): zlib could not start")
        }
        defer { inflateEnd(stream) }
        let result: Inflated = data.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                var taken = 0, given = 0
                while true {
                    if stream.pointee.avail_in == 0, taken < input.count, let base = input.baseAddress {
                        let n = min(chunk, input.count - taken)
                        stream.pointee.next_in = UnsafeMutablePointer(mutating: (base + taken).assumingMemoryBound(to: Bytef.self))
                        stream.pointee.avail_in = uInt(n)
                        taken += n
                    }
                    if stream.pointee.avail_out == 0 {
                        guard given < output.count, let base = output.baseAddress else { return .past }
                        let n = min(chunk, output.count - given)
                        stream.pointee.next_out = (base + given).assumingMemoryBound(to: Bytef.self)
                        stream.pointee.avail_out = uInt(n)
                        given += n
                    }
                    let status = zlib_inflate(stream)
                    switch status {
                    case Z_STREAM_END:
                        let total = Int(stream.pointee.total_out)
                        return total == size ? .exact : total > size ? .past : .short(total)
                    case Z_OK:
                        continue
                    case Z_BUF_ERROR where stream.pointee.avail_out == 0:
                        continue
                    case Z_BUF_ERROR where stream.pointee.avail_in == 0 && taken < input.count:
                        continue
                    default:
                        return .failed(status)
                    }
                }
            }
        }
        switch result {
        case .exact:
            out.removeLast()
            return out
        case .short(let total): throw TopiaryError(.corruptFile, "\(what) inflates to \(total) bytes, not the \(size) it declares")
        case .past: throw TopiaryError(.corruptFile, "\(what) inflates past the \(size) bytes it declares")
        case .failed(let status): throw TopiaryError(.corruptFile, "\(what): damaged deflate data (zlib status \(status)); truncated?")
        }
    }
}

/// zlib's `inflate`, named apart from ``ZipArchive``'s method.
private func zlib_inflate(_ stream: UnsafeMutablePointer<z_stream>) -> Int32 { inflate(stream, Z_NO_FLUSH) }
