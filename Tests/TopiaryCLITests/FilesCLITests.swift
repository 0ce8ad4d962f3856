import Foundation
import XCTest

/// `topiary inspect`, `topiary export` and `prune --encoding`: the three layer encodings from the
/// command line, and malformed model files refused with one line and a non-zero exit.
final class FilesCLITests: CLITestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TopiaryTests/Fixtures").standardized

    /// A valid 6-4-3 version-2 file (layer 0 compressed, layer 1 masked) written outside Topiary.
    var goodModel: String { Self.fixtures.appendingPathComponent("good-v2.safetensors").path }

    func testInspectReportsLayersAndSizes() throws {
        let r = try run(["inspect", goodModel, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssertEqual(j["architecture"] as? String, "6-4-3")
        XCTAssertEqual(j["format_version"] as? Int, 2)
        XCTAssertEqual(j["bytes"] as? Int, try Data(contentsOf: URL(fileURLWithPath: goodModel)).count)
        let layers = try XCTUnwrap(j["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.compactMap { $0["encoding"] as? String }, ["csr", "masked"])
        XCTAssertEqual(layers.compactMap { $0["kept"] as? Int }, [6, 8])
        XCTAssertEqual(layers.compactMap { $0["nonzeros"] as? Int }, [5, 8], "the kept zero is kept, not a non-zero")
        // 6 values × 4 + 6 columns × 2 + 5 offsets × 4 + 4 biases × 4.
        XCTAssertEqual(layers.first?["bytes"] as? Int, 24 + 12 + 20 + 16)
        XCTAssertEqual(layers.first?["index_bytes"] as? Int, 12 + 20)
        for key in ["dense_bytes", "ratio_to_dense", "bytes_per_nonzero", "ratio_to_nonzero_values", "header_bytes", "index_bytes"] {
            XCTAssertNotNil(j[key], key)
        }
        let text = try run(["inspect", goodModel])
        XCTAssertEqual(text.status, 0, text.stderr)
        for part in ["format version 2", "csr", "masked", "U16 columns, I32 offsets", "1 bit per weight", "of the same model saved dense",
                     "bytes each (its value alone: 4"] {
            XCTAssert(text.stdout.contains(part), "\(part) not in:\n\(text.stdout)")
        }
    }

    func testExportConvertsExactlyBetweenEncodings() throws {
        let dir = try temporaryDirectory()
        func export(_ from: String, _ to: String, _ extra: [String]) throws -> [String: Any] {
            let r = try run(["export", "--model", from, "--output", dir.appendingPathComponent(to).path, "--json"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try json(r.stdout)
        }
        func bytes(_ name: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(name)) }
        _ = try export(goodModel, "c.safetensors", ["--encoding", "compressed"])
        _ = try export(dir.appendingPathComponent("c.safetensors").path, "m.safetensors", ["--encoding", "masked"])
        _ = try export(dir.appendingPathComponent("m.safetensors").path, "c2.safetensors", ["--encoding", "compressed"])
        XCTAssertEqual(try bytes("c.safetensors"), try bytes("c2.safetensors"), "compressed → masked → compressed")
        _ = try export(dir.appendingPathComponent("c2.safetensors").path, "m2.safetensors", ["--encoding", "masked"])
        XCTAssertEqual(try bytes("m.safetensors"), try bytes("m2.safetensors"), "masked → compressed → masked")
        XCTAssertEqual(try metadata(dir.appendingPathComponent("c.safetensors").path)["layer_encodings"], "csr,csr")

        let automatic = try export(goodModel, "a.safetensors", [])
        XCTAssertEqual(((automatic["output"] as? [String: Any])?["layers"] as? [[String: Any]])?.compactMap { $0["encoding"] as? String },
                       ["csr", "masked"])
        let half = try export(goodModel, "h.safetensors", ["--values", "f16"])
        XCTAssertEqual(((half["output"] as? [String: Any])?["layers"] as? [[String: Any]])?.first?["values"] as? String, "F16")

        let dense = try export(goodModel, "d.safetensors", ["--encoding", "dense"])
        XCTAssertEqual(dense["masks_dropped"] as? [Int], [0, 1])
        XCTAssertEqual(try metadata(dir.appendingPathComponent("d.safetensors").path)["format_version"], "1")
        XCTAssertEqual(Set(try tensors(dir.appendingPathComponent("d.safetensors").path).keys),
                       ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"])
        let text = try run(["export", "--model", goodModel, "--output", dir.appendingPathComponent("d2.safetensors").path, "--encoding", "dense"])
        XCTAssert(text.stdout.contains("masks of layers 0, 1 are not saved"), text.stdout)

        let bad = try run(["export", "--model", goodModel, "--output", dir.appendingPathComponent("x.safetensors").path,
                           "--encoding", "masked", "--values", "f16"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        let unknown = try run(["export", "--model", goodModel, "--output", dir.appendingPathComponent("x.safetensors").path,
                               "--encoding", "sparse"])
        XCTAssertEqual(unknown.status, 64, unknown.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.safetensors").path))
    }

    /// Every hostile fixture: `inspect`, `eval` and `export` exit 1 with one line naming the
    /// file, never by a signal.
    func testHostileModelFilesFailWithOneLineAndNoSignal() throws {
        let folder = Self.fixtures.appendingPathComponent("hostile")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 25)
        let dir = try temporaryDirectory()
        for name in names {
            let path = folder.appendingPathComponent(name).path
            for args in [["inspect", path], ["inspect", path, "--json"], ["eval", "--model", path],
                         ["export", "--model", path, "--output", dir.appendingPathComponent("out.safetensors").path]] {
                let r = try runChecked(args)
                XCTAssertFalse(r.signalled, "\(args): ended by a signal")
                XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
                let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
                XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
                XCTAssert(r.stderr.contains(path), "\(args): \(r.stderr)")
                XCTAssert(r.stdout.isEmpty, "\(args): \(r.stdout)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.safetensors").path))
    }

    func testPruneSavesTheEncodingAskedFor() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let dense = dir.appendingPathComponent("dense.safetensors").path
        let limits = ["--train-limit", "1000", "--validation", "0", "--test-limit", "200", "--threads", "1"]
        XCTAssertEqual(try run(["train", "--arch", "784-32-10", "--epochs", "1", "--output", dense, "--json"] + limits).status, 0)
        var sizes: [String: Int] = [:]
        for encoding in ["automatic", "masked", "compressed", "dense"] {
            let output = dir.appendingPathComponent("\(encoding).safetensors").path
            let r = try run(["prune", "--model", dense, "--schedule", "oneshot", "--target", "0.9", "--finetune-epochs", "0",
                             "--final-epochs", "0", "--encoding", encoding, "--output", output, "--json"] + limits)
            XCTAssertEqual(r.status, 0, r.stderr)
            let inspected = try json(try run(["inspect", output, "--json"]).stdout)
            sizes[encoding] = inspected["bytes"] as? Int
            let layers = (inspected["layers"] as? [[String: Any]])?.compactMap { $0["encoding"] as? String }
            if encoding == "automatic" {
                // Global magnitude leaves the 32×10 layer lightly pruned: whichever is smaller there.
                XCTAssertEqual(layers?.first, "csr")
            } else {
                XCTAssertEqual(layers, ["masked": ["masked", "masked"], "compressed": ["csr", "csr"],
                                        "dense": ["dense", "dense"]][encoding], encoding)
            }
            let e = try run(["eval", "--model", output, "--json"] + limits)
            XCTAssertEqual(e.status, 0, e.stderr)
            XCTAssertEqual(try XCTUnwrap(try json(e.stdout)["sparsity"] as? Double), 0.9, accuracy: 0.001, encoding)
        }
        XCTAssertLessThanOrEqual(try XCTUnwrap(sizes["automatic"]), try XCTUnwrap(sizes["compressed"]))
        XCTAssertLessThan(try XCTUnwrap(sizes["compressed"]), try XCTUnwrap(sizes["dense"]) / 5)
        XCTAssertGreaterThan(try XCTUnwrap(sizes["masked"]), try XCTUnwrap(sizes["dense"]))
    }
}
