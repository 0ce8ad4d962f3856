import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class IDXTests: XCTestCase {
    let data: [UInt8] = (0..<24).map { UInt8($0 * 10) }

    func testReadsRawFile() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("a-idx3-ubyte", idxBytes(dimensions: [2, 3, 4], data: data))
        let idx = try IDX.read(path)
        XCTAssertEqual(idx.dimensions, [2, 3, 4])
        XCTAssertEqual(idx.bytes, data)
    }

    func testGzipAndRawReadTheSame() throws {
        let dir = try TemporaryDirectory()
        let bytes = idxBytes(dimensions: [2, 3, 4], data: data)
        let raw = try dir.write("a-idx3-ubyte", bytes)
        let gz = dir.file("b-idx3-ubyte.gz")
        try writeGzip(bytes, to: gz)
        XCTAssertEqual(try dir.read(gz).prefix(2), [0x1F, 0x8B])
        let a = try IDX.read(raw), b = try IDX.read(gz)
        XCTAssertEqual(a.dimensions, b.dimensions)
        XCTAssertEqual(a.bytes, b.bytes)
    }

    func testGzipIsDetectedByContentNotName() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("no-suffix")
        try writeGzip(idxBytes(dimensions: [24], data: data), to: path)
        XCTAssertEqual(try IDX.read(path).bytes, data)
    }

    func testMissingFileIsFileNotFound() throws {
        let dir = try TemporaryDirectory()
        let error = assertThrowsTopiaryError(.fileNotFound, try IDX.read(dir.file("missing")))
        XCTAssertTrue(error?.message.contains(dir.file("missing")) ?? false)
    }

    func testFolderIsFileNotFound() throws {
        let dir = try TemporaryDirectory()
        assertThrowsTopiaryError(.fileNotFound, try IDX.read(dir.path))
    }

    func testWrongMagicIsCorrupt() throws {
        let dir = try TemporaryDirectory()
        var bytes = idxBytes(dimensions: [24], data: data)
        bytes[0] = 0x50
        let path = try dir.write("bad", bytes)
        let error = assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
        XCTAssertTrue(error?.message.contains(path) ?? false)
        XCTAssertTrue(error?.message.contains("magic") ?? false)
    }

    func testUnsupportedDataTypeIsCorrupt() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("float", idxBytes(dimensions: [6], data: data, dataType: 0x0D))
        let error = assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
        XCTAssertTrue(error?.message.contains("data type") ?? false)
    }

    func testTruncatedRawFileIsCorrupt() throws {
        let dir = try TemporaryDirectory()
        let bytes = idxBytes(dimensions: [2, 3, 4], data: data)
        for cut in [2, 9, bytes.count - 1] {
            let path = try dir.write("cut\(cut)", Array(bytes.prefix(cut)))
            let error = assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
            XCTAssertTrue(error?.message.contains("truncated") ?? false, error?.message ?? "")
        }
    }

    func testTruncatedGzipFileIsCorrupt() throws {
        let dir = try TemporaryDirectory()
        let gz = dir.file("full.gz")
        try writeGzip(idxBytes(dimensions: [4096], data: (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }), to: gz)
        let compressed = try dir.read(gz)
        let path = try dir.write("cut.gz", Array(compressed.prefix(compressed.count / 2)))
        assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
        // Cutting only the checksum trailer is caught too.
        let tail = try dir.write("cut-trailer.gz", Array(compressed.dropLast(4)))
        assertThrowsTopiaryError(.corruptFile, try IDX.read(tail))
    }

    func testDamagedGzipChecksumIsCorrupt() throws {
        let dir = try TemporaryDirectory()
        let gz = dir.file("full.gz")
        try writeGzip(idxBytes(dimensions: [24], data: data), to: gz)
        var compressed = try dir.read(gz)
        compressed[compressed.count - 6] ^= 0xFF   // inside the CRC-32
        let path = try dir.write("damaged.gz", compressed)
        assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
    }

    func testTrailingBytesAreCorrupt() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("long", idxBytes(dimensions: [24], data: data) + [1, 2])
        assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
    }

    func testAbsurdDimensionsAreRefusedBeforeAllocating() throws {
        let dir = try TemporaryDirectory()
        // 2^32 - 1 cubed overflows Int; 65535^2 exceeds a small cap.
        let huge = try dir.write("huge", idxBytes(dimensions: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: data))
        assertThrowsTopiaryError(.invalidShape, try IDX.read(huge))
        let big = try dir.write("big", idxBytes(dimensions: [65535, 65535], data: data))
        assertThrowsTopiaryError(.invalidShape, try IDX.read(big, maximumByteCount: 1 << 20))
        // Within the cap but larger than the raw file: truncated.
        let large = try dir.write("large", idxBytes(dimensions: [1 << 14, 1 << 14], data: data))
        assertThrowsTopiaryError(.corruptFile, try IDX.read(large))
        // A tiny gzip file cannot decompress to 4 GB.
        let gz = dir.file("big.gz")
        try writeGzip(idxBytes(dimensions: [65535, 65535], data: data), to: gz)
        assertThrowsTopiaryError(.invalidShape, try IDX.read(gz))
        let lying = dir.file("lying.gz")
        try writeGzip(idxBytes(dimensions: [1 << 20, 512], data: data), to: lying)
        assertThrowsTopiaryError(.corruptFile, try IDX.read(lying))
    }

    func testZeroDimensionsAreCorrupt() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("rank0", [0, 0, 8, 0])
        assertThrowsTopiaryError(.corruptFile, try IDX.read(path))
    }

    func testBytesAndFileReadTheSame() throws {
        let dir = try TemporaryDirectory()
        let gz = dir.file("a.gz")
        try writeGzip(idxBytes(dimensions: [2, 12], data: data), to: gz)
        for path in [try dir.write("a", idxBytes(dimensions: [2, 12], data: data)), gz] {
            let idx = try IDX(bytes: try dir.read(path), source: "bytes")
            XCTAssertEqual(idx.dimensions, [2, 12])
            XCTAssertEqual(idx.bytes, data)
        }
    }

    func testConcatenatedGzipMembersReadAsOne() throws {
        // `cat a.gz b.gz` is a valid gzip file (zlib's gzread reads it whole, so must Topiary).
        let dir = try TemporaryDirectory()
        let bytes = idxBytes(dimensions: [24], data: data)
        let (a, b) = (dir.file("a.gz"), dir.file("b.gz"))
        try writeGzip(Array(bytes.prefix(10)), to: a)
        try writeGzip(Array(bytes.dropFirst(10)), to: b)
        let path = try dir.write("ab.gz", try dir.read(a) + dir.read(b))
        XCTAssertEqual(try IDX.read(path).bytes, data)
        // Bytes after the last member that do not start another one are refused.
        let tail = try dir.write("tail.gz", try dir.read(a) + dir.read(b) + [0x00, 0x01])
        let error = assertThrowsTopiaryError(.corruptFile, try IDX.read(tail))
        XCTAssertTrue(error?.message.contains("unexpected bytes after the gzip stream") ?? false, error?.message ?? "")
    }

    func testGzipReadInSmallChunksIsTheSame() throws {
        // zlib counts in 32 bits: a member over 4 GiB is handed to it in chunks. Chunks of a few
        // bytes take the same path on a small file, member boundaries inside a chunk included.
        let dir = try TemporaryDirectory()
        let big = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 5) }
        let bytes = idxBytes(dimensions: [50, 100], data: big)
        let (a, b) = (dir.file("a.gz"), dir.file("b.gz"))
        try writeGzip(Array(bytes.prefix(2001)), to: a)
        try writeGzip(Array(bytes.dropFirst(2001)), to: b)
        let gz = try dir.read(a) + dir.read(b)
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let idx = try IDX(bytes: gz, source: "chunked", chunk: chunk)
            XCTAssertEqual(idx.dimensions, [50, 100], "chunk \(chunk)")
            XCTAssertEqual(idx.bytes, big, "chunk \(chunk)")
            XCTAssertThrowsError(try IDX(bytes: Array(gz.dropLast(3)), source: "cut", chunk: chunk), "chunk \(chunk)")
        }
    }
}
