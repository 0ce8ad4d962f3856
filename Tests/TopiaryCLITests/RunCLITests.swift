import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// `topiary run` and `topiary report` on recipes/quick.yaml, as separate processes: the report's
/// files, agreement with the individual commands, shards merged, and a run killed and resumed.
final class RunCLITests: CLITestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var quick: String { root.appendingPathComponent("recipes/quick.yaml").path }

    /// One uninterrupted, unsharded run of the quick recipe, shared by the tests (it takes a while).
    private static var reference: (folder: URL, results: [String: Any])?

    func referenceRun() throws -> (folder: URL, results: [String: Any]) {
        if let reference = Self.reference { return reference }
        try requireDataset()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("topiary-run-\(UUID().uuidString)")
        let r = try run(["run", Self.quick, "--output", folder.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssert(r.stderr.isEmpty, "no progress with --json: \(r.stderr)")
        let printed = try json(r.stdout)
        let written = try json(String(contentsOf: folder.appendingPathComponent("results.json"), encoding: .utf8))
        XCTAssertEqual(NSDictionary(dictionary: printed), NSDictionary(dictionary: written), "--json prints results.json")
        Self.reference = (folder, written)
        return (folder, written)
    }

    override class func tearDown() {
        if let folder = reference?.folder { try? FileManager.default.removeItem(at: folder) }
        reference = nil
        super.tearDown()
    }

    /// `value` without measurements of time: the `timing` and `environment` keys, at any depth.
    func withoutTimings(_ value: Any) -> Any {
        if let d = value as? [String: Any] {
            return d.filter { $0.key != "timing" && $0.key != "environment" }.mapValues(withoutTimings)
        }
        if let a = value as? [Any] { return a.map(withoutTimings) }
        return value
    }

    func assertSameResults(_ a: [String: Any], _ b: [String: Any], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let (x, y) = (withoutTimings(a) as? [String: Any] ?? [:], withoutTimings(b) as? [String: Any] ?? [:])
        XCTAssertEqual(NSDictionary(dictionary: x), NSDictionary(dictionary: y), message, file: file, line: line)
        XCTAssertFalse((x["results"] as? [Any] ?? []).isEmpty, file: file, line: line)
    }

    func testQuickRecipeWritesReportResultsAndPlots() throws {
        let (folder, results) = try referenceRun()
        XCTAssertEqual(results["schema_version"] as? Int, 1)
        let rows = try XCTUnwrap(results["results"] as? [[String: Any]])
        XCTAssertEqual(rows.count, 4, "2 methods × 2 targets × 1 seed")
        XCTAssertEqual(Set(rows.compactMap { $0["method"] as? String }), ["global-geometric", "layerwise-oneshot"])
        for row in rows {
            let target = try XCTUnwrap(row["target"] as? Double)
            XCTAssertEqual(try XCTUnwrap(row["weight_sparsity"] as? Double), target, accuracy: 0.005)
            XCTAssertGreaterThan(try XCTUnwrap(row["test_accuracy"] as? Double), 0.6)
            let bench = try XCTUnwrap((row["timing"] as? [String: Any])?["bench"] as? [[String: Any]])
            XCTAssertEqual(bench.compactMap { $0["batch"] as? Int }, [1, 128])
            XCTAssertGreaterThan(try XCTUnwrap(bench[0]["compressed_samples_per_s"] as? Double), 0)
            let model = try XCTUnwrap(row["model"] as? String)
            XCTAssert(FileManager.default.fileExists(atPath: folder.appendingPathComponent(model).path), model)
        }
        let report = try String(contentsOf: folder.appendingPathComponent("report.md"), encoding: .utf8)
        for text in ["# Study `quick`", "## Accuracy, size and speed", "global-geometric", "### Crossover", "## Reproduce", "plots/accuracy.svg"] {
            XCTAssert(report.contains(text), "report.md lacks \(text)")
        }
        let plots = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("plots").path).filter { $0.hasSuffix(".svg") }
        XCTAssertGreaterThanOrEqual(plots.count, 4, "\(plots)")
        let renderer = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first { FileManager.default.isExecutableFile(atPath: $0) }
        for plot in plots {
            let url = folder.appendingPathComponent("plots/\(plot)")
            let parser = XMLParser(data: try Data(contentsOf: url))
            XCTAssertTrue(parser.parse(), "\(plot) is not well-formed XML")
            guard let renderer else { continue }
            let png = folder.appendingPathComponent("\(plot).png")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: renderer)
            p.arguments = [url.path, "-o", png.path]
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "rsvg-convert failed on \(plot)")
            let bytes = [UInt8](try Data(contentsOf: png).prefix(8))
            XCTAssertEqual(bytes, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "\(plot) did not render to a PNG")
        }
        if renderer == nil { print("note: rsvg-convert not installed (apt-get install librsvg2-bin): plots checked as XML only") }
    }

    /// The commands the report names, run by hand from the study folder, give its numbers.
    func testReportAgreesWithTheIndividualCommands() throws {
        let (folder, results) = try referenceRun()
        let scratch = try temporaryDirectory()
        func inFolder(_ command: String, replacingOutput output: String) throws -> [String: Any] {
            var words = command.split(separator: " ").map(String.init)
            XCTAssertEqual(words.first, "topiary")
            words.removeFirst()
            if let i = words.firstIndex(of: "--output") { words[i + 1] = output }
            if let i = words.firstIndex(of: "--milestone-output") { words[i + 1] = scratch.appendingPathComponent("m-{sparsity}.safetensors").path }
            let p = Process()
            p.executableURL = binary
            p.arguments = words + ["--json"]
            p.currentDirectoryURL = folder
            let out = Pipe()
            p.standardOutput = out
            p.standardError = Pipe()
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "\(words)")
            return try json(String(decoding: data, as: UTF8.self))
        }
        // train
        let dense = try XCTUnwrap((results["dense"] as? [[String: Any]])?.first)
        let train = try inFolder(try XCTUnwrap(dense["command"] as? String), replacingOutput: scratch.appendingPathComponent("dense.safetensors").path)
        XCTAssertEqual(train["test_accuracy"] as? Double, dense["test_accuracy"] as? Double)
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("dense.safetensors")),
                       try Data(contentsOf: folder.appendingPathComponent(try XCTUnwrap(dense["model"] as? String))), "the same bits")
        // prune, for every run
        let rows = try XCTUnwrap(results["results"] as? [[String: Any]])
        for run in try XCTUnwrap(results["runs"] as? [[String: Any]]) {
            let out = scratch.appendingPathComponent("pruned.safetensors").path
            let pruned = try inFolder(try XCTUnwrap(run["command"] as? String), replacingOutput: out)
            let top = try XCTUnwrap((run["targets"] as? [Double])?.max())
            let last = try XCTUnwrap(rows.first { $0["method"] as? String == run["method"] as? String && $0["target"] as? Double == top })
            let final = try XCTUnwrap(pruned["final"] as? [String: Any])
            XCTAssertEqual(final["test_accuracy"] as? Double, last["test_accuracy"] as? Double, "\(run["method"] ?? "")")
            XCTAssertEqual(final["nonzero_parameters"] as? Int, last["nonzero_parameters"] as? Int)
            // eval of the study's model
            let eval = try run2(["eval", "--model", folder.appendingPathComponent(try XCTUnwrap(last["model"] as? String)).path, "--json",
                                 "--validation", "2000", "--train-limit", "12000", "--test-limit", "5000"])
            XCTAssertEqual(eval["test_accuracy"] as? Double, last["test_accuracy"] as? Double)
        }
    }

    private func run2(_ arguments: [String]) throws -> [String: Any] {
        let r = try run(arguments)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try json(r.stdout)
    }

    func testTwoShardsMergedGiveTheUnshardedResults() throws {
        let (_, results) = try referenceRun()
        let folder = try temporaryDirectory()
        // Shard 1 as a Slurm array task runs it (examples/slurm/study.sbatch, array 1-2), shard 2 by hand.
        let slurm = Process()
        slurm.executableURL = URL(fileURLWithPath: "/bin/bash")
        slurm.arguments = [Self.root.appendingPathComponent("examples/slurm/study.sbatch").path, Self.quick, folder.path]
        slurm.environment = ProcessInfo.processInfo.environment.merging(
            ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2", "TOPIARY": binary.path]) { $1 }
        let slurmOut = Pipe()
        slurm.standardOutput = slurmOut
        try slurm.run()
        let printed = String(decoding: slurmOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        slurm.waitUntilExit()
        XCTAssertEqual(slurm.terminationStatus, 0)
        XCTAssert(printed.contains("shard 1/2 done"), printed)
        let second = try run(["run", Self.quick, "--output", folder.path, "--shard", "2/2"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssert(second.stdout.contains("shard 2/2 done"), second.stdout)
        XCTAssert(second.stdout.contains("reused dense/"), "shard 2 reuses the dense model shard 1 trained: \(second.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("results.json").path), "a shard writes no report")
        let merged = try run(["report", folder.path, "--json"])
        XCTAssertEqual(merged.status, 0, merged.stderr)
        assertSameResults(try json(merged.stdout), results, "two shards merged must equal the unsharded run, timings aside")

        // One shard alone is refused by report, naming what is missing.
        let half = try temporaryDirectory()
        XCTAssertEqual(try run(["run", Self.quick, "--output", half.path, "--shard", "1/3"]).status, 0)
        let refused = try run(["report", half.path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssert(refused.stderr.contains("is incomplete"), refused.stderr)
    }

    func testKilledRunResumesToTheSameResults() throws {
        let (_, results) = try referenceRun()
        let folder = try temporaryDirectory()
        let p = Process()
        p.executableURL = binary
        p.arguments = ["run", Self.quick, "--output", folder.path]
        p.standardOutput = Pipe()
        p.standardError = Pipe()
        try p.run()
        // Kill it (SIGKILL: no chance to clean up) once its first step after training is saved.
        let cells = folder.appendingPathComponent("cells")
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline, p.isRunning, ((try? FileManager.default.contentsOfDirectory(atPath: cells.path)) ?? []).filter({ $0.hasSuffix(".json") }).isEmpty {
            usleep(2_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run finished before it could be killed")
        let done = try FileManager.default.contentsOfDirectory(atPath: cells.path).filter { $0.hasSuffix(".json") }
        XCTAssertGreaterThanOrEqual(done.count, 1)
        XCTAssertLessThan(done.count, 5, "killed mid-run: the quick study has 5 steps")

        let resumed = try run(["run", Self.quick, "--output", folder.path, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssert(resumed.stdout.contains("done before"), resumed.stdout)
        XCTAssert(resumed.stdout.contains("reused dense/"), "the dense model is reused: \(resumed.stdout)")
        let after = try json(String(contentsOf: folder.appendingPathComponent("results.json"), encoding: .utf8))
        assertSameResults(after, results, "a killed and resumed run must end with the uninterrupted run's results")
    }

    func testBadRecipesAreRefusedBeforeAnyWork() throws {
        let folder = try temporaryDirectory()
        for (yaml, key) in [("methods:\n  - schedle: geometric\n", "methods[0].schedle: unknown key; did you mean \"schedule\"?"),
                            ("training:\n  epochs: many\nmethods:\n  - scope: global\n", "training.epochs"),
                            ("targets: [0.9, 1.5]\nmethods:\n  - scope: global\n", "targets[1]: sparsity 1.5 is outside [0, 1]")] {
            let recipe = folder.appendingPathComponent("r.yaml")
            try yaml.write(to: recipe, atomically: true, encoding: .utf8)
            let out = folder.appendingPathComponent("study")
            let r = try run(["run", recipe.path, "--output", out.path])
            XCTAssertNotEqual(r.status, 0)
            XCTAssert(r.stderr.contains(key), "\(key) not in: \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "refused before any work: no folder")
        }
    }
}
