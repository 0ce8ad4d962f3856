import Foundation
import XCTest
import CZlib
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// A fresh folder under the system's temporary directory, removed when the value is released
/// (call ``remove()`` to remove it earlier).
final class TemporaryDirectory {
    /// The folder's path, without a trailing slash.
    let path: String

    init(_ label: String = "topiary-tests") throws {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/" + label + "-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { remove() }

    /// Removes the folder and everything in it.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The path of `name` inside the folder.
    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `bytes` to `name` inside the folder and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Reads the file `name` (or an absolute path).
    func read(_ name: String) throws -> [UInt8] {
        let p = name.hasPrefix("/") ? name : file(name)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
    }

    /// The names of the entries in the folder, sorted (hidden files included).
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

/// Asserts that `body` throws a ``TopiaryError`` of `kind`, and returns it for further checks.
@discardableResult
func assertThrowsTopiaryError<T>(_ kind: TopiaryError.Kind, _ body: @autoclosure () throws -> T,
                                 file: StaticString = #filePath, line: UInt = #line) -> TopiaryError? {
    do {
        _ = try body()
        XCTFail("expected a \(kind) error, nothing was thrown", file: file, line: line)
    } catch let error as TopiaryError {
        XCTAssertEqual(error.kind, kind, "wrong kind; message: \(error.message)", file: file, line: line)
        return error
    } catch {
        XCTFail("expected a TopiaryError of kind \(kind), got \(error)", file: file, line: line)
    }
    return nil
}

/// Gzip-compresses `bytes` with zlib (`gzopen`/`gzwrite`) into the file `path`.
func writeGzip(_ bytes: [UInt8], to path: String) throws {
    guard let file = gzopen(path, "wb9") else { throw TopiaryError(.writeFailed, "\(path): gzopen failed") }
    let written = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
    guard gzclose(file) == Z_OK, Int(written) == bytes.count else {
        throw TopiaryError(.writeFailed, "\(path): gzwrite failed")
    }
}

/// The bytes of an IDX file of unsigned bytes with the given dimensions and data.
func idxBytes(dimensions: [Int], data: [UInt8], dataType: UInt8 = 0x08) -> [UInt8] {
    var out: [UInt8] = [0, 0, dataType, UInt8(dimensions.count)]
    for d in dimensions {
        let v = UInt32(d)
        out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
    return out + data
}
