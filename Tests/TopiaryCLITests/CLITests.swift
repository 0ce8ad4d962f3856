import Foundation
import XCTest

/// Runs the built `topiary` binary and checks its output, JSON and exit codes.
final class CLITests: CLITestCase {
    func testHelpListsCommands() throws {
        let r = try run(["--help"])
        XCTAssertEqual(r.status, 0)
        for command in ["train", "eval", "prune", "sensitivity", "bench"] { XCTAssert(r.stdout.contains(command), "help lacks \(command): \(r.stdout)") }
    }

    func testTrainThenEvalAgreeInJSON() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = dir.appendingPathComponent("m.safetensors").path
        let limits = ["--train-limit", "3000", "--validation", "500", "--test-limit", "1000"]
        let train = try run(["train", "--arch", "784-64-10", "--epochs", "2", "--lr", "0.05", "--seed", "3",
                             "--threads", "1", "--output", model, "--json"] + limits)
        XCTAssertEqual(train.status, 0, train.stderr)
        let t = try json(train.stdout)
        let accuracy = try XCTUnwrap(t["test_accuracy"] as? Double)
        XCTAssertGreaterThan(accuracy, 0.6)
        XCTAssertLessThanOrEqual(accuracy, 1)
        XCTAssertEqual(t["parameters"] as? Int, 784 * 64 + 64 + 64 * 10 + 10)
        let epochs = try XCTUnwrap(t["epochs"] as? [[String: Any]])
        XCTAssertEqual(epochs.count, 2)
        for key in ["epoch", "train_loss", "val_accuracy", "test_accuracy", "seconds"] {
            XCTAssertNotNil(epochs[0][key], "epoch record lacks \(key)")
        }
        // The one line a restart for a better OpenBLAS core prints (on a CPU OpenBLAS does not know) is not progress.
        let progress = train.stderr.split(separator: "\n").filter { !$0.hasPrefix("topiary: OpenBLAS") }
        XCTAssert(progress.isEmpty, "no progress output with --json: \(train.stderr)")

        let eval = try run(["eval", "--model", model, "--json", "--threads", "1"] + limits)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let e = try json(eval.stdout)
        XCTAssertEqual(e["test_accuracy"] as? Double, accuracy, "eval must feed the model exactly as it was trained")
        XCTAssertEqual(e["test_loss"] as? Double, t["test_loss"] as? Double)
        XCTAssertEqual(e["nonzero_parameters"] as? Int, t["nonzero_parameters"] as? Int)
    }

    /// --save-epochs 0,1 writes <stem>.epoch-0 and .epoch-1 next to --output; the epoch-1 file holds,
    /// bit for bit, the weights of a one-epoch run with the same seed.
    func testSaveEpochsWritesTheWeightsAtTheEndOfEachChosenEpoch() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let limits = ["--train-limit", "2000", "--validation", "500", "--test-limit", "500", "--threads", "1"]
        let model = dir.appendingPathComponent("dense.safetensors").path
        let two = try run(["train", "--arch", "784-16-10", "--epochs", "2", "--seed", "3", "--save-epochs", "1,0",
                           "--output", model, "--json"] + limits)
        XCTAssertEqual(two.status, 0, two.stderr)
        let epochFiles = ["dense.epoch-0.safetensors", "dense.epoch-1.safetensors"].map { dir.appendingPathComponent($0).path }
        XCTAssertEqual(try json(two.stdout)["epoch_files"] as? [String], epochFiles)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["dense.epoch-0.safetensors", "dense.epoch-1.safetensors", "dense.safetensors"])

        let one = dir.appendingPathComponent("one.safetensors").path
        let r = try run(["train", "--arch", "784-16-10", "--epochs", "1", "--seed", "3", "--output", one, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let saved = try tensors(epochFiles[1]), reference = try tensors(one), final = try tensors(model)
        XCTAssertEqual(Set(saved.keys), ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"], "a dense network is saved without masks")
        for (name, tensor) in reference {
            XCTAssertEqual(saved[name]?.bytes, tensor.bytes, "\(name) at the end of epoch 1")
        }
        XCTAssertNotEqual(saved["layers.0.weight"]?.bytes, final["layers.0.weight"]?.bytes, "epoch 2 moved on")
        XCTAssertNotEqual(try tensors(epochFiles[0])["layers.0.weight"]?.bytes, saved["layers.0.weight"]?.bytes)

        // The epoch is inserted before the last extension of the file name, not of a folder.
        let odd = dir.appendingPathComponent("v1.2/model.final.bin").path
        try FileManager.default.createDirectory(atPath: dir.appendingPathComponent("v1.2").path, withIntermediateDirectories: true)
        let o = try run(["train", "--arch", "784-16-10", "--epochs", "1", "--seed", "3", "--save-epochs", "0", "--output", odd, "--json"] + limits)
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(try json(o.stdout)["epoch_files"] as? [String], [dir.appendingPathComponent("v1.2/model.final.epoch-0.safetensors").path])

        for bad in ["3", "x", "-1"] {
            let b = try run(["train", "--epochs", "2", "--save-epochs", bad, "--output", dir.appendingPathComponent("bad.safetensors").path])
            XCTAssertEqual(b.status, 64, "--save-epochs \(bad): \(b.stderr)")
            XCTAssert(b.stderr.contains("--save-epochs"), b.stderr)
        }
    }

    /// --validation 0: the validation fields are JSON null (not 0) and the text says n/a.
    func testTrainWithoutValidationReportsNull() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let limits = ["--train-limit", "2000", "--validation", "0", "--test-limit", "500", "--threads", "1"]
        let model = dir.appendingPathComponent("m.safetensors").path
        let r = try run(["train", "--arch", "784-16-10", "--epochs", "1", "--output", model, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssert(j["val_accuracy"] is NSNull, r.stdout)
        XCTAssert(j["val_loss"] is NSNull, r.stdout)
        XCTAssertEqual(j["validation_count"] as? Int, 0)
        let epoch = try XCTUnwrap((j["epochs"] as? [[String: Any]])?.first)
        XCTAssert(epoch["val_accuracy"] is NSNull && epoch["val_loss"] is NSNull, "\(epoch)")
        XCTAssertNotNil(epoch["test_accuracy"] as? Double)

        let text = try run(["train", "--arch", "784-16-10", "--epochs", "1", "--output", model] + limits)
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssert(text.stdout.contains("val acc n/a"), text.stdout)

        let split = try run(["train", "--arch", "784-16-10", "--epochs", "1", "--output", model, "--json", "--validation", "500",
                             "--train-limit", "2000", "--test-limit", "500", "--threads", "1"])
        let s = try json(split.stdout)
        let accuracy = try XCTUnwrap(s["val_accuracy"] as? Double)
        XCTAssertEqual(((s["epochs"] as? [[String: Any]])?.last?["val_accuracy"] as? Double), accuracy)
        XCTAssertNotNil(s["val_loss"] as? Double)
    }

    func testMissingModelFileIsAClearErrorNotACrash() throws {
        let r = try run(["eval", "--model", "/nonexistent/model.safetensors"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.stderr.contains("/nonexistent/model.safetensors"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
    }

    func testCorruptModelFileIsAClearError() throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("bad.safetensors").path
        try Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]).write(to: URL(fileURLWithPath: path))
        let r = try run(["eval", "--model", path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.stderr.contains("bad.safetensors"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
    }

    func testInvalidOptionsAreRejectedBeforeWork() throws {
        for args in [["train", "--lr", "-1"], ["train", "--arch", "784-x-10"], ["train", "--arch", "100-10"],
                     ["train", "--optimizer", "rmsprop"], ["train", "--arch", "784-65536-65536-10"], ["train", "--arch", "784--10"], ["train", "--dataset", "cifar"], ["train", "--threads", "0"],
                     ["train", "--activation", "swish"], ["train", "--schedule", "cosine:2"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssert(r.stderr.lowercased().contains("error"), "\(args): \(r.stderr)")
        }
    }

    func testMissingDataDirectoryNamesTheFileAndTheFix() throws {
        let dir = try temporaryDirectory()
        let r = try run(["train", "--data-dir", dir.path, "--epochs", "1", "--output", dir.appendingPathComponent("m.safetensors").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.stderr.contains("train-images-idx3-ubyte"), r.stderr)
        XCTAssert(r.stderr.contains("dataset-fashion-mnist"), r.stderr)
    }

    func testBenchGridPrintsTheIssueJSON() throws {
        let r = try run(["bench", "--shape", "64x96", "--batch", "1,8", "--sparsity", "0,0.9", "--threads", "1",
                         "--runs", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        let results = try XCTUnwrap(j["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 4)
        for cell in results {
            XCTAssertEqual(cell["shape"] as? String, "64x96")
            for key in ["batch", "threads", "sparsity", "dense_ms", "csr_ms", "speedup"] {
                XCTAssertNotNil(cell[key], "cell lacks \(key): \(cell)")
            }
            let dense = try XCTUnwrap(cell["dense_ms"] as? Double), csr = try XCTUnwrap(cell["csr_ms"] as? Double)
            XCTAssertEqual(try XCTUnwrap(cell["speedup"] as? Double), dense / csr, accuracy: 1e-6 * dense / csr)
        }
        XCTAssertEqual((j["crossover"] as? [[String: Any]])?.count, 2)
        // The pool's counters over the run: one thread hands the pool nothing.
        let pool = try XCTUnwrap(j["pool"] as? [String: Any])
        for key in ["jobs", "alone_jobs", "delays", "back_offs"] { XCTAssertEqual(pool[key] as? Int, 0, "pool \(key): \(pool)") }
    }

    /// On one CPU (`taskset -c`, the first this process may use) the grid measures `--threads 1,3,2`
    /// once, at one thread, and says so.
    func testBenchMeasuresThreadCountsAsTheLibraryRunsThem() throws {
        let taskset = URL(fileURLWithPath: "/usr/bin/taskset")
        guard FileManager.default.isExecutableFile(atPath: taskset.path) else { throw XCTSkip("no taskset (util-linux)") }
        // The first CPU of this process's affinity mask (`Cpus_allowed_list: 0-3,8` → 0).
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let allowed = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        let cpu = try XCTUnwrap(allowed.dropFirst("Cpus_allowed_list:".count).split(whereSeparator: { $0 == "," || $0 == "-" }).first)
        let process = Process(), out = Pipe(), err = Pipe()
        process.executableURL = taskset
        process.arguments = ["-c", cpu.trimmingCharacters(in: .whitespaces), binary.path, "bench", "--shape", "64x96", "--batch", "8", "--sparsity", "0.9",
                             "--threads", "1,3,2", "--runs", "3", "--json"]
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errText = String(decoding: stderr, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, errText)
        XCTAssert(errText.contains("topiary: this process may run on 1 processor; thread counts 3,2 run as 1"), errText)
        let results = try XCTUnwrap(try json(String(decoding: stdout, as: UTF8.self))["results"] as? [[String: Any]])
        XCTAssertEqual(results.compactMap { $0["threads"] as? Int }, [1])
    }

    func testBenchAutomaticReportsThePickOfEveryCell() throws {
        let r = try run(["bench", "--shape", "64x96", "--batch", "8", "--sparsity", "0,0.99", "--threads", "1",
                         "--runs", "3", "--automatic", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let results = try XCTUnwrap(try json(r.stdout)["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 2)
        // Under 50% sparsity the automatic policy keeps the layer dense without timing it.
        XCTAssertEqual(results[0]["automatic"] as? String, "dense")
        for cell in results {
            XCTAssert(["dense", "csr"].contains(cell["automatic"] as? String ?? ""), "\(cell)")
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(cell["automatic_slowdown"] as? Double), 1)
        }
        let text = try run(["bench", "--shape", "64x96", "--batch", "8", "--sparsity", "0", "--threads", "1", "--runs", "3", "--automatic"])
        XCTAssert(text.stdout.contains("automatic: the faster path in"), text.stdout)
        for other in [["--network"], ["--training"], ["--model", "m.safetensors"], ["--check", "b.json"]] {
            let bad = try run(["bench", "--automatic"] + other)
            XCTAssertEqual(bad.status, 64, "\(other): \(bad.stderr)")
        }
    }

    func testBenchCheckFailsOnAnImpossibleBaselineAndPassesOnAGenerousOne() throws {
        let dir = try temporaryDirectory()
        func baseline(ratio: Double) throws -> String {
            let path = dir.appendingPathComponent("baseline-\(ratio).json").path
            let text = """
            {"tolerance": 0.1, "cells": [{"shape": "64x96", "batch": 8, "threads": 1, "sparsity": 0.9, "ratio": \(ratio)}]}
            """
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let impossible = try run(["bench", "--check", try baseline(ratio: 1e-9), "--json"])
        XCTAssertEqual(impossible.status, 1, impossible.stderr)
        XCTAssertEqual((try json(impossible.stdout)["regressions"] as? [Any])?.count, 1)
        let generous = try run(["bench", "--check", try baseline(ratio: 1e9)])
        XCTAssertEqual(generous.status, 0, generous.stderr)
        let corrupt = dir.appendingPathComponent("corrupt.json").path
        try "{not json".write(toFile: corrupt, atomically: true, encoding: .utf8)
        let bad = try run(["bench", "--check", corrupt])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssert(bad.stderr.contains("corrupt.json"), bad.stderr)
    }

    func testBenchRejectsInvalidLists() throws {
        for args in [["bench", "--shape", "64by64"], ["bench", "--sparsity", "1.5"], ["bench", "--batch", "0"],
                     ["bench", "--threads", "x"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
        }
    }
}

extension CLITests {
    func testBenchCheckRejectsAnUnrunnableBaselineWithoutCrashing() throws {
        let dir = try temporaryDirectory()
        let cases = [
            "batch0.json": #"{"tolerance": 0.1, "cells": [{"shape": "64x96", "batch": 0, "threads": 1, "sparsity": 0.9, "ratio": 0.5}]}"#,
            "empty.json": #"{"tolerance": 0.1, "cells": []}"#,
            "threads.json": #"{"tolerance": 0.1, "cells": [{"shape": "64x96", "batch": 8, "threads": 100, "sparsity": 0.9, "ratio": 0.5}]}"#,
            "sparsity.json": #"{"tolerance": 0.1, "cells": [{"shape": "64x96", "batch": 8, "threads": 1, "sparsity": 1e300, "ratio": 0.5}]}"#,
        ]
        for (name, text) in cases {
            let path = dir.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let r = try run(["bench", "--check", path])
            XCTAssertNotEqual(r.status, 0, "\(name): \(r.stderr)")
            XCTAssert(r.stderr.contains(name), "\(name): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), "\(name): \(r.stderr)")
        }
    }
}
