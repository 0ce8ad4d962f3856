import Foundation
import XCTest

/// Runs the built `topiary prune` and `topiary sensitivity` and checks their output, JSON, saved
/// files and exit codes.
final class PruneCLITests: CLITestCase {
    private let limits = ["--train-limit", "2000", "--validation", "500", "--test-limit", "1000", "--threads", "1"]

    /// A small trained model, trained once and shared by the tests of one run.
    private static var sharedModel: String?

    private func trainedModel(in dir: URL) throws -> String {
        if let model = Self.sharedModel, FileManager.default.fileExists(atPath: model) { return model }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("topiary-prune-cli-model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let model = folder.appendingPathComponent("dense.safetensors").path
        let r = try run(["train", "--arch", "784-32-16-10", "--epochs", "1", "--seed", "0", "--output", model, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        Self.sharedModel = model
        return model
    }

    override class func tearDown() {
        if let model = sharedModel { try? FileManager.default.removeItem(atPath: (model as NSString).deletingLastPathComponent) }
        sharedModel = nil
        super.tearDown()
    }

    /// The fraction of exactly-zero weights in a saved model, as `topiary inspect` reads the file
    /// (pruned models are saved compressed: their zeros are the weights the file does not store,
    /// plus any stored value that is 0).
    private func zeroFraction(_ path: String) throws -> Double {
        let r = try run(["inspect", path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let layers = try XCTUnwrap(try json(r.stdout)["layers"] as? [[String: Any]])
        let weights = layers.compactMap { $0["weights"] as? Int }.reduce(0, +)
        let nonzeros = layers.compactMap { $0["nonzeros"] as? Int }.reduce(0, +)
        return 1 - Double(nonzeros) / Double(weights)
    }

    func testHelpListsPruneAndSensitivity() throws {
        let r = try run(["--help"])
        XCTAssertEqual(r.status, 0)
        for command in ["prune", "sensitivity"] { XCTAssert(r.stdout.contains(command), "help lacks \(command)") }
    }

    func testGeometricPruneWithMilestonesReportsJSONAndSavesExactZeros() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let output = dir.appendingPathComponent("pruned.safetensors").path
        let r = try run(["prune", "--model", model, "--schedule", "geometric", "--step-fraction", "0.5",
                         "--milestones", "0.5,0.8", "--finetune-epochs", "1", "--final-epochs", "1",
                         "--milestone-output", dir.appendingPathComponent("m-{sparsity}.safetensors").path,
                         "--output", output, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssert(r.stderr.isEmpty, "no progress output with --json: \(r.stderr)")
        let j = try json(r.stdout)
        let steps = try XCTUnwrap(j["steps"] as? [[String: Any]])
        XCTAssertEqual(steps.compactMap { $0["target_sparsity"] as? Double }, [0.5, 0.75, 0.8])
        for key in ["step", "target_sparsity", "sparsity", "layer_sparsity", "val_accuracy", "test_accuracy", "seconds"] {
            XCTAssertNotNil(steps[0][key], "step record lacks \(key)")
        }
        let final = try XCTUnwrap(j["final"] as? [String: Any])
        let sparsity = try XCTUnwrap(final["sparsity"] as? Double)
        XCTAssertEqual(sparsity, try zeroFraction(output), "reported sparsity == zeros in the saved file")
        XCTAssertEqual(sparsity, 0.8, accuracy: 0.001)
        XCTAssertNotNil(final["test_accuracy"])
        XCTAssertNotNil(final["nonzero_parameters"])
        let milestones = try XCTUnwrap(j["milestones"] as? [[String: Any]])
        XCTAssertEqual(milestones.count, 2)
        XCTAssert(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m-50.0.safetensors").path))
        XCTAssert(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m-80.0.safetensors").path))

        // eval agrees on the saved model's sparsity.
        let e = try run(["eval", "--model", output, "--json"] + limits)
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try json(e.stdout)["sparsity"] as? Double, sparsity)
    }

    func testOneShotOBSPruneReportsJSONAndSavesExactZeros() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        var accuracy: [String: Double] = [:]
        for saliency in ["obs", "magnitude"] {
            let output = dir.appendingPathComponent("\(saliency).safetensors").path
            let r = try run(["prune", "--model", model, "--schedule", "oneshot", "--target", "0.9", "--saliency", saliency,
                             "--calibration-samples", "512", "--finetune-epochs", "0", "--final-epochs", "0",
                             "--output", output, "--json"] + limits)
            XCTAssertEqual(r.status, 0, r.stderr)
            let final = try XCTUnwrap(try json(r.stdout)["final"] as? [String: Any])
            let sparsity = try XCTUnwrap(final["sparsity"] as? Double)
            XCTAssertEqual(sparsity, 0.9, accuracy: 0.0005)
            XCTAssertEqual(sparsity, try zeroFraction(output), "reported sparsity == zeros in the saved file")
            accuracy[saliency] = try XCTUnwrap(final["test_accuracy"] as? Double)
        }
        XCTAssertGreaterThanOrEqual(accuracy["obs"] ?? 0, accuracy["magnitude"] ?? 1, "\(accuracy)")
    }

    /// The completed steps a checkpoint's state.json records, or nil before the first.
    private func checkpointedSteps(_ folder: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: folder + "/state.json"),
              let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return (state["records"] as? [Any])?.count
    }

    /// A run killed after its first checkpointed step, with steps left, resumes to the result of
    /// an uninterrupted run, bit for bit.
    func testResumingAnInterruptedRunGivesTheUninterruptedResult() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let args = ["prune", "--model", model, "--schedule", "list:0.2,0.4,0.6,0.8,0.9", "--finetune-epochs", "2",
                    "--final-epochs", "0", "--scope", "layerwise", "--json"] + limits
        let whole = try run(args + ["--output", dir.appendingPathComponent("whole.safetensors").path])
        XCTAssertEqual(whole.status, 0, whole.stderr)

        let checkpoint = dir.appendingPathComponent("ckpt").path
        let interrupted = Process()
        interrupted.executableURL = binary
        interrupted.arguments = args + ["--checkpoint", checkpoint, "--output", dir.appendingPathComponent("never.safetensors").path]
        interrupted.standardOutput = FileHandle.nullDevice
        interrupted.standardError = FileHandle.nullDevice
        try interrupted.run()
        let deadline = Date().addingTimeInterval(300)
        while interrupted.isRunning, Date() < deadline, (checkpointedSteps(checkpoint) ?? 0) < 1 { usleep(1000) }
        kill(interrupted.processIdentifier, SIGKILL)
        interrupted.waitUntilExit()
        XCTAssertEqual(interrupted.terminationReason, .uncaughtSignal, "the run was killed, not finished")
        let done = try XCTUnwrap(checkpointedSteps(checkpoint), "the killed run left a checkpoint")
        XCTAssert((1..<5).contains(done), "the killed run had completed \(done) of 5 steps; it must have had work left")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("never.safetensors").path))
        let state = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: checkpoint + "/state.json"))) as? [String: Any])
        let checkpointedSeconds = (state["records"] as? [[String: Any]] ?? []).compactMap { $0["seconds"] as? Double }

        let resumedPath = dir.appendingPathComponent("resumed.safetensors").path
        let resumed = try run(args + ["--checkpoint", checkpoint, "--resume", "--output", resumedPath])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(checkpointedSteps(checkpoint), 5)
        let a = try json(whole.stdout), c = try json(resumed.stdout)
        let figures = { (j: [String: Any]) in
            (j["steps"] as? [[String: Any]] ?? []).map { [$0["test_accuracy"], $0["val_accuracy"], $0["sparsity"], $0["target_sparsity"]].compactMap { $0 as? Double } }
        }
        XCTAssertEqual(figures(a).count, 5)
        XCTAssertEqual(figures(a), figures(c), "the resumed run reports the checkpointed steps and then the same ones")
        XCTAssertEqual((a["final"] as? [String: Any])?["test_accuracy"] as? Double, (c["final"] as? [String: Any])?["test_accuracy"] as? Double)
        XCTAssertEqual(a["method"] as? String, c["method"] as? String)
        // Resumed, not restarted: the first steps are the killed run's records, timings included.
        XCTAssertEqual((c["steps"] as? [[String: Any]] ?? []).prefix(done).compactMap { $0["seconds"] as? Double }, checkpointedSeconds)
        XCTAssertEqual(try tensors(dir.appendingPathComponent("whole.safetensors").path).mapValues(\.bytes),
                       try tensors(resumedPath).mapValues(\.bytes), "the same weights and masks, bit for bit")
    }

    func testStructuredPruneShrinksTheNetwork() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let output = dir.appendingPathComponent("small.safetensors").path
        let r = try run(["prune", "--model", model, "--structured", "neurons", "--criterion", "l2", "--target", "0.5",
                         "--schedule", "oneshot", "--finetune-epochs", "0", "--final-epochs", "1", "--output", output, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        let structured = try XCTUnwrap(j["structured"] as? [String: Any])
        XCTAssertEqual(structured["sizes_after"] as? [Int], [784, 16, 8, 10])
        XCTAssertNotNil(structured["speedup"])
        let e = try run(["eval", "--model", output, "--json"] + limits)
        XCTAssertEqual(try json(e.stdout)["architecture"] as? String, "784-16-8-10")
    }

    /// --scope global with --structured ranks the 48 hidden neurons together: exactly round(0.5 · 48)
    /// = 24 remain, however they fall between the two hidden layers.
    func testStructuredLeastSquaresRepairBeatsRemovalAlone() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        var accuracy: [String: Double] = [:]
        for repair in ["none", "least-squares"] {
            let r = try run(["prune", "--model", model, "--structured", "neurons", "--criterion", "l2", "--schedule", "oneshot",
                             "--target", "0.5", "--repair", repair, "--calibration-samples", "512",
                             "--finetune-epochs", "0", "--final-epochs", "0",
                             "--output", dir.appendingPathComponent("\(repair).safetensors").path, "--json"] + limits)
            XCTAssertEqual(r.status, 0, r.stderr)
            accuracy[repair] = try XCTUnwrap((try json(r.stdout)["final"] as? [String: Any])?["test_accuracy"] as? Double)
        }
        XCTAssertGreaterThanOrEqual(accuracy["least-squares"] ?? 0, accuracy["none"] ?? 1, "\(accuracy)")
        // --damping reaches the repair: a heavy one gives other logits than the default 0.01, and
        // the default is --damping 0.01 itself (the same logits).
        func logits(_ model: String) throws -> Data {
            let out = dir.appendingPathComponent("logits.npy").path
            let e = try run(["eval", "--model", model, "--predictions", out] + limits)
            XCTAssertEqual(e.status, 0, e.stderr)
            return try Data(contentsOf: URL(fileURLWithPath: out))
        }
        var outputs: [String: Data] = [:]
        for damping in ["0.01", "1000"] {
            let path = dir.appendingPathComponent("damping-\(damping).safetensors").path
            let r = try run(["prune", "--model", model, "--structured", "neurons", "--criterion", "l2", "--schedule", "oneshot",
                             "--target", "0.5", "--repair", "least-squares", "--calibration-samples", "512", "--damping", damping,
                             "--finetune-epochs", "0", "--final-epochs", "0", "--output", path] + limits)
            XCTAssertEqual(r.status, 0, r.stderr)
            outputs[damping] = try logits(path)
        }
        XCTAssertEqual(outputs["0.01"], try logits(dir.appendingPathComponent("least-squares.safetensors").path))
        XCTAssertNotEqual(outputs["0.01"], outputs["1000"])
    }

    func testStructuredGlobalScopeRemovesHalfOfAllHiddenNeurons() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let output = dir.appendingPathComponent("global.safetensors").path
        let r = try run(["prune", "--model", model, "--structured", "neurons", "--scope", "global", "--criterion", "l2",
                         "--target", "0.5", "--schedule", "oneshot", "--finetune-epochs", "0", "--final-epochs", "0",
                         "--output", output, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        let sizes = try XCTUnwrap((j["structured"] as? [String: Any])?["sizes_after"] as? [Int])
        XCTAssertEqual(sizes.count, 4)
        XCTAssertEqual([sizes[0], sizes[3]], [784, 10])
        XCTAssertEqual(sizes[1] + sizes[2], 24)
        XCTAssert(sizes[1] >= 1 && sizes[2] >= 1, "\(sizes)")
        XCTAssert((j["method"] as? String)?.contains("; global") ?? false, "\(j["method"] ?? "")")
        let e = try run(["eval", "--model", output, "--json"] + limits)
        XCTAssertEqual(try json(e.stdout)["architecture"] as? String, sizes.map(String.init).joined(separator: "-"))
    }

    func testSensitivityReportsCurvesAndBudgetTargets() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let csv = dir.appendingPathComponent("curves.csv").path
        let r = try run(["sensitivity", "--model", model, "--sparsities", "0.5,0.9", "--budget", "0.01", "--target", "0.8",
                         "--csv", csv, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        let curves = try XCTUnwrap(j["curves"] as? [String: Any])
        XCTAssertEqual((curves["layers"] as? [Any])?.count, 3)
        XCTAssertEqual((j["budget_targets"] as? [Double])?.count, 3)
        let allocation = try XCTUnwrap(j["allocation"] as? [Double])
        let weights: [Double] = [784 * 32, 32 * 16, 16 * 10]
        var pruned = 0.0
        for (a, w) in zip(allocation, weights) { pruned += a * w }
        XCTAssertEqual(pruned / weights.reduce(0, +), 0.8, accuracy: 1e-6)
        XCTAssertEqual(try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").count, 7)

        let text = try run(["sensitivity", "--model", model, "--sparsities", "0.5,0.9"] + limits)
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssert(text.stdout.contains("layer 0"), text.stdout)

        // The saliency options are prune's: random draws from --seed, taylor averages training batches.
        let random = try run(["sensitivity", "--model", model, "--sparsities", "0.5", "--saliency", "random", "--seed", "3", "--json"] + limits)
        let taylor = try run(["sensitivity", "--model", model, "--sparsities", "0.5", "--saliency", "taylor", "--taylor-batches", "2", "--json"] + limits)
        XCTAssertEqual(random.status, 0, random.stderr)
        XCTAssertEqual(taylor.status, 0, taylor.stderr)
    }

    /// With --budget the final target is the sparsity the per-layer targets imply, so every layer
    /// lands on its own target (not scaled to the default 90%).
    func testSensitivityBudgetLandsOnThePerLayerTargets() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let output = dir.appendingPathComponent("budget.safetensors").path
        let r = try run(["prune", "--model", model, "--scope", "sensitivity", "--budget", "0.02",
                         "--sensitivity-sparsities", "0.5,0.8,0.95", "--schedule", "oneshot",
                         "--finetune-epochs", "0", "--final-epochs", "0", "--output", output, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        let targets = try XCTUnwrap(j["layer_targets"] as? [Double])
        let weights: [Double] = [784 * 32, 32 * 16, 16 * 10]
        XCTAssertEqual(targets.count, 3)
        let implied = zip(targets, weights).map { $0 * $1 }.reduce(0, +) / weights.reduce(0, +)
        let steps = try XCTUnwrap(j["steps"] as? [[String: Any]])
        let last = try XCTUnwrap(steps.last)
        XCTAssertEqual(try XCTUnwrap(last["target_sparsity"] as? Double), implied, accuracy: 1e-9)
        let layers = try XCTUnwrap(last["layer_sparsity"] as? [Double])
        for (got, want) in zip(layers, targets) { XCTAssertEqual(got, want, accuracy: 0.01, "layers \(layers), targets \(targets)") }
    }

    /// --validation 0 leaves no validation accuracy: "n/a", not 0.00%.
    func testEmptyValidationPrintsNotApplicable() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let r = try run(["prune", "--model", model, "--schedule", "oneshot", "--target", "0.5", "--finetune-epochs", "0",
                         "--final-epochs", "0", "--output", dir.appendingPathComponent("p.safetensors").path,
                         "--train-limit", "2000", "--validation", "0", "--test-limit", "1000", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssert(r.stdout.contains("validation n/a"), r.stdout)
        XCTAssert(r.stdout.contains("val n/a"), r.stdout)
        XCTAssertFalse(r.stdout.contains("val 0.00%"), r.stdout)
    }

    /// --prune-biases: biases are ranked with the weights, the count is exact over weights and
    /// biases, the file carries the bias masks, and the JSON says what the sparsity counts.
    func testPruneBiasesCountsBiasesExactlyAndSavesBiasMasks() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let output = dir.appendingPathComponent("biases.safetensors").path
        // Masked: the file holds every weight and bias, so that the zeros can be counted in it.
        let r = try run(["prune", "--model", model, "--prune-biases", "--schedule", "oneshot", "--target", "0.5",
                         "--finetune-epochs", "0", "--final-epochs", "1", "--encoding", "masked", "--output", output, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssertEqual(j["sparsity_counts"] as? String, "weights and biases")
        XCTAssert((j["method"] as? String)?.contains("; biases") ?? false, "\(j["method"] ?? "")")
        // 784-32-16-10: 25,760 weights and 58 biases; round(0.5 · 25,818) = 12,909 pruned.
        let final = try XCTUnwrap(j["final"] as? [String: Any])
        XCTAssertEqual(final["parameters"] as? Int, 25_818)
        XCTAssertEqual(final["nonzero_parameters"] as? Int, 25_818 - 12_909)
        XCTAssertEqual(try XCTUnwrap(final["sparsity"] as? Double), 12_909.0 / 25_818.0, accuracy: 1e-12)
        let t = try tensors(output)
        var zeros = 0, prunedBiases = 0
        for (name, tensor) in t where name.hasSuffix(".weight") || name.hasSuffix(".bias") {
            zeros += floats(tensor.bytes).filter { $0 == 0 }.count
        }
        for l in 0..<3 {
            let bias = floats(try XCTUnwrap(t["layers.\(l).bias"]).bytes)
            guard let mask = t["layers.\(l).bias_mask"] else { continue }
            XCTAssertEqual(mask.dtype, "U8")
            XCTAssertEqual(mask.bytes.count, (bias.count + 7) / 8, "packed bits")
            let bits = bias.indices.map { mask.bytes[$0 / 8] >> UInt8($0 % 8) & 1 }
            for (b, m) in zip(bias, bits) where m == 0 {
                XCTAssertEqual(b, 0)
                prunedBiases += 1
            }
        }
        XCTAssertEqual(zeros, 12_909, "pruned weights and biases are exact zeros in the file after fine-tuning")
        XCTAssertGreaterThan(prunedBiases, 0)

        let plain = try run(["prune", "--model", model, "--schedule", "oneshot", "--target", "0.5", "--finetune-epochs", "0",
                             "--final-epochs", "0", "--output", dir.appendingPathComponent("plain.safetensors").path, "--json"] + limits)
        XCTAssertEqual(try json(plain.stdout)["sparsity_counts"] as? String, "weights")
        XCTAssertFalse(try tensors(dir.appendingPathComponent("plain.safetensors").path).keys.contains { $0.hasSuffix("bias_mask") })
    }

    /// rewind:K without --rewind-weights uses <model stem>.epoch-K.safetensors from `train --save-epochs`:
    /// the same result as naming the file; rewind:0 from the file equals the seed's initialisation;
    /// with neither, the error names both ways.
    func testRewindFindsTheEpochFileSavedByTrain() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let dense = dir.appendingPathComponent("dense.safetensors").path
        let epoch = { (k: Int) in dir.appendingPathComponent("dense.epoch-\(k).safetensors").path }
        let t = try run(["train", "--arch", "784-32-16-10", "--epochs", "2", "--seed", "0", "--save-epochs", "0,1",
                         "--output", dense, "--json"] + limits)
        XCTAssertEqual(t.status, 0, t.stderr)
        let base = ["prune", "--model", dense, "--schedule", "oneshot", "--target", "0.5", "--finetune-epochs", "0",
                    "--final-epochs", "1", "--json"] + limits
        func pruned(_ name: String, _ extra: [String]) throws -> (json: [String: Any], tensors: [String: [UInt8]]) {
            let path = dir.appendingPathComponent(name).path
            let r = try run(base + extra + ["--output", path])
            XCTAssertEqual(r.status, 0, r.stderr)
            return (try json(r.stdout), try tensors(path).mapValues(\.bytes))
        }
        let automatic = try pruned("auto.safetensors", ["--finetune", "rewind:1"])
        XCTAssertEqual(automatic.json["rewind_from"] as? String, epoch(1))
        let named = try pruned("named.safetensors", ["--finetune", "rewind:1", "--rewind-weights", epoch(1)])
        XCTAssertEqual(automatic.tensors, named.tensors)
        let continued = try pruned("continue.safetensors", [])
        XCTAssertNotEqual(automatic.tensors, continued.tensors, "rewinding changes the result")

        let fromFile = try pruned("zero-file.safetensors", ["--finetune", "rewind:0"])
        XCTAssertEqual(fromFile.json["rewind_from"] as? String, epoch(0))
        try FileManager.default.removeItem(atPath: epoch(0))
        let fromSeed = try pruned("zero-seed.safetensors", ["--finetune", "rewind:0"])
        XCTAssertEqual(fromSeed.json["rewind_from"] as? String, "the initialisation rebuilt from seed 0")
        XCTAssertEqual(fromFile.tensors, fromSeed.tensors, "epoch 0 is the initialisation")

        let missing = try run(base + ["--finetune", "rewind:2", "--output", dir.appendingPathComponent("x.safetensors").path])
        XCTAssertNotEqual(missing.status, 0)
        for part in ["--rewind-weights", "--save-epochs 2", epoch(2)] { XCTAssert(missing.stderr.contains(part), missing.stderr) }
        XCTAssertFalse(missing.stderr.contains("Fatal error"), missing.stderr)

        // Retrained to the same output (another seed, no --save-epochs): the old epoch-1 file is
        // another run's and is refused unless named.
        let again = try run(["train", "--arch", "784-32-16-10", "--epochs", "2", "--seed", "1",
                             "--output", dense, "--json"] + limits)
        XCTAssertEqual(again.status, 0, again.stderr)
        let stale = try run(base + ["--finetune", "rewind:1", "--output", dir.appendingPathComponent("y.safetensors").path])
        XCTAssertNotEqual(stale.status, 0)
        XCTAssert(stale.stderr.contains("does not record the training run"), stale.stderr)
        _ = try pruned("named-stale.safetensors", ["--finetune", "rewind:1", "--rewind-weights", epoch(1)])
    }

    /// train records a typed recipe; prune records its method and the source's file name, and no
    /// folder of this machine unless --record-paths asks for it.
    func testModelFilesRecordTypedProvenanceWithoutPaths() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let trained = try metadata(model)
        let recipe = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(trained["training_recipe"]).utf8)) as? [String: Any])
        XCTAssertEqual(recipe["seed"] as? Int, 0)
        XCTAssertEqual(recipe["sizes"] as? [Int], [784, 32, 16, 10])
        XCTAssertEqual(recipe["train_limit"] as? Int, 2000)
        XCTAssertNil(trained["trained_with"])

        let output = dir.appendingPathComponent("p.safetensors").path
        let milestone = dir.appendingPathComponent("m-{sparsity}.safetensors").path
        let r = try run(["prune", "--model", model, "--schedule", "oneshot", "--target", "0.5", "--finetune-epochs", "0",
                         "--final-epochs", "0", "--milestone-output", milestone, "--output", output, "--json"] + limits)
        XCTAssertEqual(r.status, 0, r.stderr)
        for path in [output, dir.appendingPathComponent("m-50.0.safetensors").path] {
            let meta = try metadata(path)
            for (key, value) in meta { XCTAssertFalse(value.contains("/tmp") || value.contains(dir.path), "\(key) = \(value)") }
            let provenance = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(meta["pruning_provenance"]).utf8)) as? [String: Any])
            XCTAssertEqual(provenance["source"] as? String, "dense.safetensors")
            XCTAssertEqual(provenance["steps"] as? Int, 1)
            XCTAssertEqual(provenance["method"] as? String, try json(r.stdout)["method"] as? String)
            XCTAssertEqual(meta["training_recipe"], trained["training_recipe"], "the pruned model keeps how its weights were trained")
        }
        let withPaths = try run(["prune", "--model", model, "--schedule", "oneshot", "--target", "0.5", "--finetune-epochs", "0",
                                 "--final-epochs", "0", "--record-paths", "--output", output, "--json"] + limits)
        XCTAssertEqual(withPaths.status, 0, withPaths.stderr)
        XCTAssert(try metadata(output)["pruning_provenance"]?.contains(model) ?? false)
    }

    /// A model saved before typed records (free-text `trained_with`) still loads and prunes; only
    /// rewind:0, which needs its recipe, asks for the weights instead.
    func testOldStyleModelFilesStillWork() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let old = dir.appendingPathComponent("old.safetensors").path
        try FileManager.default.copyItem(atPath: try trainedModel(in: dir), toPath: old)
        try editMetadata(old) { meta in
            meta["training_recipe"] = nil
            meta["trained_with"] = "topiary train --arch 784-32-16-10 --epochs 1 --seed 0"
        }
        let e = try run(["eval", "--model", old, "--json"] + limits)
        XCTAssertEqual(e.status, 0, e.stderr)
        let base = ["prune", "--model", old, "--schedule", "oneshot", "--target", "0.5", "--finetune-epochs", "0", "--final-epochs", "0",
                    "--output", dir.appendingPathComponent("p.safetensors").path, "--json"] + limits
        let plain = try run(base)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let rewind = try run(base + ["--finetune", "rewind:0"])
        XCTAssertNotEqual(rewind.status, 0)
        XCTAssert(rewind.stderr.contains("records no training recipe") && rewind.stderr.contains("--rewind-weights"), rewind.stderr)
        XCTAssertFalse(rewind.stderr.contains("Fatal error"), rewind.stderr)
    }

    /// --validation 0 --json: every validation figure is null, not 0.
    func testEmptyValidationGivesNullInJSON() throws {
        try requireDataset()
        let dir = try temporaryDirectory()
        let model = try trainedModel(in: dir)
        let r = try run(["prune", "--model", model, "--schedule", "geometric", "--step-fraction", "0.5", "--milestones", "0.5",
                         "--finetune-epochs", "0", "--final-epochs", "0", "--output", dir.appendingPathComponent("p.safetensors").path,
                         "--json", "--train-limit", "2000", "--validation", "0", "--test-limit", "1000", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try json(r.stdout)
        XCTAssert(j["dense_val_accuracy"] is NSNull, r.stdout)
        let steps = try XCTUnwrap(j["steps"] as? [[String: Any]])
        XCTAssertEqual(steps.count, 1)
        for step in steps {
            XCTAssert(step["val_accuracy"] is NSNull && step["val_loss"] is NSNull, "\(step)")
            XCTAssertNotNil(step["test_accuracy"] as? Double)
        }
        XCTAssert((j["final"] as? [String: Any])?["val_accuracy"] is NSNull, r.stdout)
        let milestones = try XCTUnwrap(j["milestones"] as? [[String: Any]])
        XCTAssertEqual(milestones.count, 1)
        XCTAssert(milestones[0]["val_accuracy"] is NSNull, "\(milestones)")
    }

    func testInvalidPruneOptionsAreRejectedBeforeWork() throws {
        for args in [["prune", "--model", "x", "--saliency", "fisher"], ["prune", "--model", "x", "--scope", "blockwise"],
                     ["prune", "--model", "x", "--schedule", "cubic"], ["prune", "--model", "x", "--target", "1.5"],
                     ["prune", "--model", "x", "--schedule", "list:0.9,0.5"], ["prune", "--model", "x", "--finetune", "rewind:-1"],
                     ["prune", "--model", "x", "--resume"], ["prune", "--model", "x", "--cap", "2:7"],
                     ["prune", "--model", "x", "--milestones", "0.95", "--target", "0.9"],
                     ["prune", "--model", "x", "--step-fraction", "1e-9"],
                     ["prune", "--model", "x", "--scope", "sensitivity", "--budget", "0.01", "--target", "0.5"],
                     ["prune", "--model", "x", "--structured", "neurons", "--prune-biases"],
                     ["prune", "--model", "x", "--structured", "neurons", "--scope", "sensitivity"],
                     ["prune", "--model", "x", "--lr-schedule", "step:0:0.5"], ["prune", "--model", "x", "--optimizer", "rmsprop"],
                     ["prune", "--model", "x", "--structured", "channels"], ["prune", "--model", "x", "--criterion", "l3"],
                     ["prune", "--model", "x", "--schedule", "list:0.5,abc"], ["prune", "--model", "x", "--finetune", "rewind"],
                     ["prune", "--model", "x", "--saliency", "obs", "--damping", "-1"],
                     ["prune", "--model", "x", "--saliency", "obs", "--calibration-samples", "0"],
                     ["prune", "--model", "x", "--saliency", "obs", "--prune-biases"],
                     ["prune", "--model", "x", "--repair", "least-squares"], ["prune", "--model", "x", "--repair", "sgels"],
                     ["sensitivity", "--model", "x", "--saliency", "fisher"],
                     ["sensitivity", "--model", "x", "--sparsities", "0.5,abc"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssert(r.stderr.lowercased().contains("error"), "\(args): \(r.stderr)")
        }
    }

    func testMissingModelIsAClearError() throws {
        let r = try run(["prune", "--model", "/nonexistent/dense.safetensors"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.stderr.contains("/nonexistent/dense.safetensors"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
    }
}
