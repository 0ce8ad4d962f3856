import Foundation
import XCTest

/// `--dataset PATH`: a user's NumPy or IDX data through the same commands as Fashion-MNIST.
final class DatasetCLITests: CLITestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TopiaryTests/Fixtures/datasets")

    /// Fashion-MNIST's first 6,000 training and 2,000 test images saved by NumPy's `savez_compressed`
    /// (as a user would save MNIST), then train, prune and eval on it.
    func testANumPyArchiveTrainsPrunesAndEvaluates() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let npz = dir.appendingPathComponent("user.npz").path
        let script = """
            import gzip, numpy as np
            def read(name, offset):
                with gzip.open('/usr/share/datasets/fashion-mnist/' + name + '.gz') as f: return np.frombuffer(f.read(), np.uint8, offset=offset)
            x = read('train-images-idx3-ubyte', 16).reshape(-1, 28, 28); y = read('train-labels-idx1-ubyte', 8)
            xt = read('t10k-images-idx3-ubyte', 16).reshape(-1, 28, 28); yt = read('t10k-labels-idx1-ubyte', 8)
            np.savez_compressed('\(npz)', x_train=x[:6000], y_train=y[:6000].astype(np.int64), x_test=xt[:2000], y_test=yt[:2000].astype(np.int64))
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", script]
        python.standardError = Pipe()
        try python.run()
        python.waitUntilExit()
        guard python.terminationStatus == 0 else { throw XCTSkip("python3 with numpy is not available (pip install numpy)") }

        let model = dir.appendingPathComponent("m.safetensors").path
        let train = try run(["train", "--dataset", npz, "--validation", "1000", "--epochs", "2", "--threads", "1", "--output", model, "--json"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let t = try json(train.stdout)
        XCTAssertEqual(t["architecture"] as? String, "784-300-100-10", "the default architecture comes from the data")
        XCTAssertEqual(t["train_count"] as? Int, 5000)
        XCTAssertGreaterThan(try XCTUnwrap(t["test_accuracy"] as? Double), 0.7)

        let pruned = dir.appendingPathComponent("p.safetensors").path
        let prune = try run(["prune", "--dataset", npz, "--validation", "1000", "--model", model, "--schedule", "oneshot", "--target", "0.9",
                             "--finetune-epochs", "0", "--final-epochs", "1", "--threads", "1", "--output", pruned, "--json"])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        let p = try XCTUnwrap(try json(prune.stdout)["final"] as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(p["sparsity"] as? Double), 0.9, accuracy: 1e-6)

        let eval = try run(["eval", "--dataset", npz, "--validation", "1000", "--model", pruned, "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertEqual(try json(eval.stdout)["test_accuracy"] as? Double, p["test_accuracy"] as? Double)
        XCTAssertEqual(try json(eval.stdout)["test_count"] as? Int, 2000)
    }

    /// The committed tiny datasets (4×4 images, 3 classes) in the three layouts give the same model.
    func testEveryLayoutTrainsTheSameModel() throws {
        var accuracies: [Double] = []
        for layout in ["tiny.npz", "tiny-npy", "tiny-idx"] {
            let dir = try temporaryDirectory()
            let r = try run(["train", "--dataset", Self.fixtures.appendingPathComponent(layout).path, "--validation", "10", "--epochs", "3",
                             "--threads", "1", "--output", dir.appendingPathComponent("m.safetensors").path, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let t = try json(r.stdout)
            XCTAssertEqual(t["architecture"] as? String, "16-300-100-3")
            accuracies.append(try XCTUnwrap(t["test_accuracy"] as? Double))
        }
        XCTAssertEqual(Set(accuracies).count, 1, "same bytes, same seed: same model (\(accuracies))")
    }

    func testHostileDatasetsFailWithOneLineAndNoSignal() throws {
        let dir = try temporaryDirectory()
        for name in ["bomb.npz", "nan.npz", "negative-label.npz", "truncated.npz", "not-a-zip.npz"] {
            let r = try run(["train", "--dataset", Self.fixtures.appendingPathComponent("hostile/\(name)").path, "--validation", "1",
                             "--epochs", "1", "--output", dir.appendingPathComponent("m.safetensors").path])
            XCTAssertEqual(r.status, 1, "\(name): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(name): one line: \(r.stderr)")
            XCTAssert(r.stderr.contains(name), r.stderr)
        }
        // A model that does not fit the data's width or classes is refused, naming both.
        let model = dir.appendingPathComponent("m.safetensors").path
        XCTAssertEqual(try run(["train", "--dataset", Self.fixtures.appendingPathComponent("tiny.npz").path, "--validation", "10",
                                "--epochs", "1", "--output", model]).status, 0)
        try requireDataset()
        let r = try run(["eval", "--model", model])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.stderr.contains("maps 16 inputs to 3 outputs; fashion-mnist has 784 inputs and 10 classes"), r.stderr)
    }
}
