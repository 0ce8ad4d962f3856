import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class SafeTensorsTests: XCTestCase {
    func sample() -> SafeTensors {
        var file = SafeTensors(metadata: ["b": "two", "a": "one \"quoted\"\n"])
        file.tensors["w"] = .init(float32: [1, -2, 0.5, .leastNonzeroMagnitude, -0.0, 3e38], shape: [2, 3])
        file.tensors["m"] = .init(uint8: [0, 1, 1, 0, 1, 1], shape: [2, 3])
        file.tensors["empty"] = .init(float32: [], shape: [0, 4])
        return file
    }

    /// A file's bytes from a hand-written header and data.
    func bytes(header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h + data
    }

    func testRoundTripIsExact() throws {
        let file = sample()
        let back = try SafeTensors(bytes: try file.serialized())
        XCTAssertEqual(back, file)
        XCTAssertEqual(back.tensors["w"]?.float32Values?.map(\.bitPattern),
                       [1, -2, 0.5, .leastNonzeroMagnitude, -0.0, 3e38].map { (x: Float) in x.bitPattern })
        XCTAssertEqual(back.tensors["m"]?.uint8Values, [0, 1, 1, 0, 1, 1])
        XCTAssertNil(back.tensors["m"]?.float32Values)
    }

    func testSerializationIsDeterministicAndPadded() throws {
        let a = try sample().serialized()
        // Built in another insertion order: same bytes.
        var other = SafeTensors(metadata: ["a": "one \"quoted\"\n", "b": "two"])
        for name in ["m", "empty", "w"] { other.tensors[name] = sample().tensors[name] }
        XCTAssertEqual(try other.serialized(), a)
        XCTAssertEqual(try SafeTensors(bytes: a).serialized(), a)
        let headerSize = Int(a[0]) | Int(a[1]) << 8
        XCTAssertEqual((8 + headerSize) % 8, 0)
        let header = String(decoding: a[8..<(8 + headerSize)], as: UTF8.self)
        XCTAssertEqual(header.trimmingCharacters(in: .whitespaces),
                       #"{"__metadata__":{"a":"one \"quoted\"\n","b":"two"},"empty":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"m":{"dtype":"U8","shape":[2,3],"data_offsets":[0,6]},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[6,30]}}"#)
    }

    func testWriteAndReadFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("t.safetensors")
        try sample().write(to: path)
        XCTAssertEqual(try SafeTensors.read(from: path), sample())
        XCTAssertEqual(try dir.read(path), try sample().serialized())
    }

    func testAtomicWriteLeavesNoTemporaryFiles() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("t.safetensors")
        try sample().write(to: path)
        var changed = sample()
        changed.metadata["c"] = "three"
        try changed.write(to: path)   // replaces the file
        XCTAssertEqual(try dir.contents(), ["t.safetensors"])
        XCTAssertEqual(try SafeTensors.read(from: path), changed)
    }

    func testWriteIntoMissingFolderFailsAndKeepsNothing() throws {
        let dir = try TemporaryDirectory()
        let error = assertThrowsTopiaryError(.writeFailed, try sample().write(to: dir.file("nowhere/t.safetensors")))
        XCTAssertTrue(error?.message.contains("nowhere/t.safetensors") ?? false)
        XCTAssertEqual(try dir.contents(), [])
    }

    func testTensorNamedMetadataIsRefused() {
        var file = SafeTensors()
        file.tensors["__metadata__"] = .init(uint8: [1], shape: [1])
        assertThrowsTopiaryError(.invalidOption, try file.serialized())
    }

    func testMissingFile() throws {
        let dir = try TemporaryDirectory()
        assertThrowsTopiaryError(.fileNotFound, try SafeTensors.read(from: dir.file("none.safetensors")))
    }

    func testTruncatedDataIsCorrupt() throws {
        let good = try sample().serialized()
        for cut in [0, 5, 8, 20, good.count - 1] {
            assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: Array(good.prefix(cut))))
        }
    }

    func testTruncatedFileNamesThePath() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("cut.safetensors", Array(try sample().serialized().dropLast(3)))
        let error = assertThrowsTopiaryError(.corruptFile, try SafeTensors.read(from: path))
        XCTAssertTrue(error?.message.contains(path) ?? false)
    }

    func testLyingHeaderLengthIsCorrupt() {
        var b = bytes(header: "{}", data: [])
        b[7] = 0x7F   // header length ≈ 9e18
        assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: b))
        var c = bytes(header: "{}", data: [])
        c[0] = 200    // longer than the file
        assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: c))
    }

    func testMalformedHeadersAreCorrupt() {
        let headers = [
            "{", "[]", "{\"w\":1}", "{\"w\":{}}", "not json",
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            #"{"w":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}"#,
            #"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            #"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
            #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#,
            #"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#,
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999999]}}"#,
            #"{"__metadata__":{"k":1},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            #"{"__metadata__":[],"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        ]
        for header in headers {
            assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: bytes(header: header, data: [0, 0, 128, 63])))
        }
        // The well-formed version of the same file reads.
        let good = bytes(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   "#, data: [0, 0, 128, 63])
        XCTAssertEqual(try SafeTensors(bytes: good).tensors["w"]?.float32Values, [1])
    }

    func testOverlappingOffsetsAreCorrupt() {
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#
        let error = assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: bytes(header: header, data: [UInt8](repeating: 0, count: 6))))
        XCTAssertTrue(error?.message.contains("overlaps") ?? false)
        let same = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: bytes(header: same, data: [UInt8](repeating: 0, count: 4))))
    }

    func testGapsAndUndescribedBytesAreCorrupt() {
        let gap = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#
        assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: bytes(header: gap, data: [0, 0])))
        let tail = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#
        assertThrowsTopiaryError(.corruptFile, try SafeTensors(bytes: bytes(header: tail, data: [0, 0])))
    }

    func testReadsUnicodeNamesAndEscapes() throws {
        let header = #"{"__metadata__":{"k\u00e9\ud83d\ude00":"a\/b\t"},"é":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}"#
        let file = try SafeTensors(bytes: bytes(header: header, data: [7]))
        XCTAssertEqual(file.metadata["ké😀"], "a/b\t")
        XCTAssertEqual(file.tensors["é"]?.uint8Values, [7])
        XCTAssertEqual(try SafeTensors(bytes: file.serialized()), file)
    }

    /// Optional: the reference Python implementation reads what we write.
    func testPythonSafetensorsReadsOurFile() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import numpy, safetensors.numpy"]
        probe.standardError = FileHandle.nullDevice
        probe.standardOutput = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { throw XCTSkip("python3 is not available") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("the Python modules numpy and safetensors are not installed") }

        let dir = try TemporaryDirectory()
        let path = dir.file("t.safetensors")
        try sample().write(to: path)
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", """
            import sys
            from safetensors.numpy import load_file
            from safetensors import safe_open
            t = load_file(sys.argv[1])
            assert t["w"].dtype.name == "float32" and t["w"].shape == (2, 3), t["w"]
            assert t["w"].tolist()[0] == [1.0, -2.0, 0.5], t["w"]
            assert t["m"].dtype.name == "uint8" and t["m"].tolist() == [[0, 1, 1], [0, 1, 1]]
            assert t["empty"].shape == (0, 4)
            with safe_open(sys.argv[1], framework="numpy") as f:
                assert f.metadata() == {"a": "one \\"quoted\\"\\n", "b": "two"}, f.metadata()
            import numpy as np
            from safetensors.numpy import save_file
            save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.array([3, 1], dtype=np.uint8),
                       "z": np.zeros((3,), dtype=np.float64)}, sys.argv[2], metadata={"k": "v"})
            """, path, dir.file("python.safetensors")]
        try check.run()
        check.waitUntilExit()
        XCTAssertEqual(check.terminationStatus, 0)
        // And we read what Python writes.
        let theirs = try SafeTensors.read(from: dir.file("python.safetensors"))
        XCTAssertEqual(theirs.tensors["x"]?.shape, [2, 3])
        XCTAssertEqual(theirs.tensors["x"]?.float32Values, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(theirs.tensors["y"]?.uint8Values, [3, 1])
        XCTAssertEqual(theirs.tensors["z"]?.dtype, .float64)
        XCTAssertEqual(theirs.metadata, ["k": "v"])
    }
}
