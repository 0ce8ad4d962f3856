import Foundation
import XCTest

/// Topiary's files read outside Topiary: `examples/python/predict.py` (NumPy alone) reproduces the
/// outputs of `topiary eval --predictions` from every encoding, and a model goes to a PyTorch
/// state dict (`export --format pytorch`) and back (`import --from pytorch`) with the same outputs.
/// Skipped where `python3` with numpy is missing (CI installs it).
final class InteropCLITests: CLITestCase {
    static let predictScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../examples/python/predict.py").standardized.path
    static let tiny = DatasetCLITests.fixtures.appendingPathComponent("tiny.npz").path

    /// Runs a Python program with `predict.py`'s folder on the import path; its last line of output is JSON.
    func python(_ script: String) throws -> [String: Any] {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import numpy"]
        probe.standardError = Pipe()
        guard (try? probe.run()) != nil else { throw XCTSkip("python3 is not available") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("numpy is not installed (pip install numpy)") }
        let folder = URL(fileURLWithPath: Self.predictScript).deletingLastPathComponent().path
        let r = try run(script: "import sys; sys.dont_write_bytecode = True; sys.path.insert(0, '\(folder)')\n" + script)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try json(String(r.stdout.split(separator: "\n").last ?? ""))
    }

    private func run(script: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process(), out = Pipe(), err = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// A 16-12-3 model trained on the tiny dataset, and the same model pruned to 70% (automatic encoding).
    func trainedAndPruned(in dir: URL) throws -> (dense: String, pruned: String) {
        let dense = dir.appendingPathComponent("m.safetensors").path, pruned = dir.appendingPathComponent("p.safetensors").path
        let train = try run(["train", "--dataset", Self.tiny, "--arch", "16-12-3", "--validation", "0", "--epochs", "3",
                             "--threads", "1", "--output", dense, "--json"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let prune = try run(["prune", "--dataset", Self.tiny, "--model", dense, "--validation", "0", "--schedule", "oneshot",
                             "--target", "0.7", "--finetune-epochs", "0", "--final-epochs", "1", "--threads", "1", "--output", pruned, "--json"])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        return (dense, pruned)
    }

    /// `topiary eval --predictions`: the test split's outputs as a NumPy file; returns the accuracy.
    func evaluate(_ model: String, predictions: String) throws -> Double {
        let r = try run(["eval", "--dataset", Self.tiny, "--model", model, "--threads", "1", "--predictions", predictions, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssertEqual(j["predictions"] as? String, predictions)
        return try XCTUnwrap(j["test_accuracy"] as? Double)
    }

    func testPredictScriptReproducesTopiaryFromEveryEncoding() throws {
        let dir = try temporaryDirectory()
        let (dense, pruned) = try trainedAndPruned(in: dir)
        var files = ["dense": dense, "pruned": pruned]
        for (name, options) in ["masked": ["--encoding", "masked"], "compressed": ["--encoding", "compressed"],
                                "f16": ["--encoding", "compressed", "--values", "f16"], "dense-export": ["--encoding", "dense"]] {
            let path = dir.appendingPathComponent("\(name).safetensors").path
            let r = try run(["export", "--model", pruned, "--output", path] + options)
            XCTAssertEqual(r.status, 0, r.stderr)
            files[name] = path
        }
        XCTAssertEqual(try metadata(files["compressed"] ?? "")["layer_encodings"], "csr,csr")
        XCTAssertEqual(try metadata(files["masked"] ?? "")["layer_encodings"], "masked,masked")
        for (name, path) in files.sorted(by: { $0.key < $1.key }) {
            let topiary = dir.appendingPathComponent("\(name)-topiary.npy").path
            let accuracy = try evaluate(path, predictions: topiary)
            let r = try python("""
                import json, numpy as np, predict
                data = np.load('\(Self.tiny)')
                logits, topiary = predict.predict('\(path)', data['x_test']), np.load('\(topiary)')
                print(json.dumps({"shape": list(topiary.shape), "dtype": str(topiary.dtype),
                                  "difference": float(np.abs(logits - topiary).max() / (1 + np.abs(topiary).max())),
                                  "same_classes": bool((logits.argmax(1) == topiary.argmax(1)).all()),
                                  "accuracy": float(np.mean(logits.argmax(1) == data['y_test']))}))
                """)
            XCTAssertEqual(r["shape"] as? [Int], [10, 3], name)
            XCTAssertEqual(r["dtype"] as? String, "float32", name)
            XCTAssertLessThan(try XCTUnwrap(r["difference"] as? Double), 1e-5, name)
            XCTAssertEqual(r["same_classes"] as? Bool, true, name)
            XCTAssertEqual(try XCTUnwrap(r["accuracy"] as? Double), accuracy, accuracy: 1e-12, name)
        }
        // The script's command line, as the README shows it.
        let cli = try run(script: "import subprocess, sys; r = subprocess.run([sys.executable, '\(Self.predictScript)', '\(files["compressed"] ?? "")', '\(Self.tiny)'], capture_output=True, text=True); print(r.stdout, r.stderr, r.returncode)")
        XCTAssert(cli.stdout.contains("10 predictions, accuracy"), cli.stdout + cli.stderr)
    }

    func testPyTorchStateDictRoundTrip() throws {
        let dir = try temporaryDirectory()
        let (_, pruned) = try trainedAndPruned(in: dir)
        let stateDict = dir.appendingPathComponent("sd.safetensors").path
        let export = try run(["export", "--model", pruned, "--output", stateDict, "--format", "pytorch", "--json"])
        XCTAssertEqual(export.status, 0, export.stderr)
        let e = try json(export.stdout)
        XCTAssertEqual(e["tensors"] as? [String], ["0.weight", "0.bias", "2.weight", "2.bias"])
        XCTAssertEqual(e["sequential"] as? String, "nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))")
        let refused = try run(["export", "--model", pruned, "--output", stateDict, "--format", "pytorch", "--encoding", "masked"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssert(refused.stderr.contains("--encoding and --values apply to Topiary files"), refused.stderr)

        let original = dir.appendingPathComponent("original.npy").path
        let accuracy = try evaluate(pruned, predictions: original)
        // The state dict alone (names, shapes, metadata), computed as nn.Sequential would; and by
        // torch itself where it is installed.
        let r = try python("""
            import json, numpy as np, predict
            t, meta = predict.read_safetensors('\(stateDict)')
            x = np.load('\(Self.tiny)')['x_test'].reshape(10, -1).astype(np.float32)
            x = (x * np.float32(meta['input_scale']) - np.float32(meta['input_mean'])) / np.float32(meta['input_std'])
            h = np.maximum(x @ t['0.weight'].T + t['0.bias'], 0) @ t['2.weight'].T + t['2.bias']
            topiary = np.load('\(original)')
            out = {"names": sorted(t), "shapes": [list(t[k].shape) for k in sorted(t)], "architecture": meta['architecture'],
                   "activations": meta['activations'], "zeros": int((t['0.weight'] == 0).sum() + (t['2.weight'] == 0).sum()),
                   "difference": float(np.abs(h - topiary).max() / (1 + np.abs(topiary).max())), "torch": None,
                   "scale": meta['input_scale'], "mean": meta['input_mean'], "std": meta['input_std']}
            try:
                import torch, torch.nn as nn
                from safetensors.torch import load_file
                m = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
                m.load_state_dict(load_file('\(stateDict)'), strict=True)
                with torch.no_grad(): out["torch"] = float(np.abs(m(torch.tensor(x)).numpy() - topiary).max() / (1 + np.abs(topiary).max()))
            except ImportError:
                pass
            print(json.dumps(out))
            """)
        XCTAssertEqual(r["names"] as? [String], ["0.bias", "0.weight", "2.bias", "2.weight"])
        XCTAssertEqual(r["shapes"] as? [[Int]], [[12], [12, 16], [3], [3, 12]])
        XCTAssertEqual(r["architecture"] as? String, "16-12-3")
        XCTAssertEqual(r["activations"] as? String, "relu,identity")
        XCTAssertEqual(r["zeros"] as? Int, Int((0.7 * Double(12 * 16 + 3 * 12)).rounded()), "pruned weights are stored as zeros")
        XCTAssertLessThan(try XCTUnwrap(r["difference"] as? Double), 1e-5)
        if let torch = r["torch"] as? Double { XCTAssertLessThan(torch, 1e-5) }

        // And back: the imported model computes the same outputs (its pruned weights are zeros, without a mask).
        let scale = try XCTUnwrap(Double(try XCTUnwrap(r["scale"] as? String)))
        let back = dir.appendingPathComponent("back.safetensors").path
        let imported = try run(["import", "--from", "pytorch", "--model", stateDict, "--arch", "16-12-3", "--input-scale", "\(1 / scale)",
                                "--mean", try XCTUnwrap(r["mean"] as? String), "--std", try XCTUnwrap(r["std"] as? String),
                                "--output", back, "--json"])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let again = dir.appendingPathComponent("again.npy").path
        XCTAssertEqual(try evaluate(back, predictions: again), accuracy)
        let compared = try python("""
            import json, numpy as np
            a, b = np.load('\(original)'), np.load('\(again)')
            print(json.dumps({"difference": float(np.abs(a - b).max() / (1 + np.abs(a).max()))}))
            """)
        XCTAssertLessThan(try XCTUnwrap(compared["difference"] as? Double), 1e-5)
    }
}
