import Foundation
import XCTest

/// Shared support for the tests that run the built `topiary` binary.
class CLITestCase: XCTestCase {
    /// The built binary, next to the test bundle.
    var binary: URL {
        let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundleURL.deletingLastPathComponent()
            ?? Bundle.main.bundleURL
        return products.appendingPathComponent("topiary")
    }

    /// Runs `topiary arguments…` and returns its exit status and outputs.
    func run(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let r = try runChecked(arguments, environment: environment)
        return (r.status, r.stdout, r.stderr)
    }

    /// Runs `topiary arguments…` and also says whether it ended by a signal; `environment`,
    /// when given, replaces the inherited one.
    func runChecked(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, signalled: Bool, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal,
                String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// A new folder, removed after the test.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("topiary-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Skips the test when Fashion-MNIST is not installed.
    func requireDataset() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw XCTSkip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
        }
    }

    /// `text` parsed as one JSON object.
    func json(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(text)")
    }

    /// The tensors of a safetensors file: name → (dtype, raw little-endian bytes), read from the bytes.
    func tensors(_ path: String) throws -> [String: (dtype: String, bytes: [UInt8])] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerSize = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerSize)])) as? [String: Any])
        var out: [String: (dtype: String, bytes: [UInt8])] = [:]
        for (name, value) in header where name != "__metadata__" {
            let entry = try XCTUnwrap(value as? [String: Any])
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
            out[name] = (try XCTUnwrap(entry["dtype"] as? String), Array(bytes[(8 + headerSize + offsets[0])..<(8 + headerSize + offsets[1])]))
        }
        return out
    }

    /// The `__metadata__` of a safetensors file, read from the bytes.
    func metadata(_ path: String) throws -> [String: String] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerSize = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerSize)])) as? [String: Any])
        return try XCTUnwrap(header["__metadata__"] as? [String: String])
    }

    /// Rewrites the `__metadata__` of a safetensors file with `edit`, keeping its tensors.
    func editMetadata(_ path: String, _ edit: (inout [String: String]) -> Void) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerSize = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerSize)])) as? [String: Any])
        var meta = try XCTUnwrap(header["__metadata__"] as? [String: String])
        edit(&meta)
        header["__metadata__"] = meta
        var newHeader = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while newHeader.count % 8 != 0 { newHeader.append(0x20) }
        let size = (0..<8).map { UInt8(truncatingIfNeeded: newHeader.count >> (8 * $0)) }
        try Data(size + newHeader + bytes[(8 + headerSize)...]).write(to: URL(fileURLWithPath: path))
    }

    /// The F32 values of one tensor's raw bytes.
    func floats(_ bytes: [UInt8]) -> [Float] {
        stride(from: 0, to: bytes.count, by: 4).map { i in
            Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
    }
}

