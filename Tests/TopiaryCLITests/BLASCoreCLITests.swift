import Foundation
import XCTest
@_spi(Kernels) import Topiary
@testable import TopiaryCLI

/// The CLI's choice of OpenBLAS core: the decision as a table, then the binary restarting itself
/// (forced with the test knob, since OpenBLAS picks a good core on the machines the tests run on)
/// and leaving a user's `OPENBLAS_CORETYPE` alone.
final class BLASCoreCLITests: CLITestCase {
    static let avx512 = BLAS.CPUFeatures(vendor: "GenuineIntel", flags: ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"])
    static let all: Set<String> = ["Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake"]

    func testDecisionTable() {
        typealias Case = (environment: [String: String], running: String, expected: BLASCoreSelection.Action)
        let cases: [Case] = [
            ([:], "Prescott", .restart(core: "SkylakeX", from: "Prescott")),
            ([:], "SkylakeX", .none),
            // A user's value, even an empty one, is never overridden.
            (["OPENBLAS_CORETYPE": "Prescott"], "Prescott", .none),
            (["OPENBLAS_CORETYPE": ""], "Prescott", .none),
            (["OPENBLAS_CORETYPE": "", "TOPIARY_TEST_ASSUME_OPENBLAS_CORE": "Prescott"], "SkylakeX", .none),
            // The test knob makes a good core look generic; empty, it is ignored.
            (["TOPIARY_TEST_ASSUME_OPENBLAS_CORE": "Prescott"], "SkylakeX", .restart(core: "SkylakeX", from: "Prescott")),
            (["TOPIARY_TEST_ASSUME_OPENBLAS_CORE": ""], "SkylakeX", .none),
            // The restarted process never restarts again, whatever it runs; a marker it cannot read is dropped.
            (["TOPIARY_OPENBLAS_RESTARTED": "Prescott>SkylakeX", "OPENBLAS_CORETYPE": "SkylakeX"], "Prescott",
             .report(BLASCoreSelection.restartedLine(from: "Prescott", asked: "SkylakeX", running: "Prescott", cpu: Self.avx512))),
            (["TOPIARY_OPENBLAS_RESTARTED": "nonsense"], "Prescott", .none),
        ]
        for c in cases {
            XCTAssertEqual(BLASCoreSelection.decide(environment: c.environment, running: c.running, cpu: Self.avx512, supported: Self.all),
                           c.expected, "\(c.environment) running \(c.running)")
        }
    }

    func testRestartedLineSaysWhetherTheCoreTook() {
        let took = BLASCoreSelection.restartedLine(from: "Prescott", asked: "SkylakeX", running: "SkylakeX", cpu: Self.avx512)
        XCTAssert(took.hasPrefix("topiary: OpenBLAS "), took)
        XCTAssert(took.contains("generic Prescott kernels for this AVX-512 CPU; restarted with OPENBLAS_CORETYPE=SkylakeX: core SkylakeX now"), took)
        XCTAssertFalse(took.contains("\n"))
        let failed = BLASCoreSelection.restartedLine(from: "Prescott", asked: "SkylakeX", running: "Prescott", cpu: Self.avx512)
        XCTAssert(failed.contains("restarted with OPENBLAS_CORETYPE=SkylakeX, but it runs Prescott still"), failed)
    }

    /// The environment of the tests without the variables the CLI reads, plus `extra`.
    func environment(_ extra: [String: String]) -> [String: String] {
        var e = ProcessInfo.processInfo.environment
        for key in ["OPENBLAS_CORETYPE", BLASCoreSelection.marker, BLASCoreSelection.assumedCoreForTests] { e[key] = nil }
        return e.merging(extra) { $1 }
    }

    /// The core this machine's CPU should get after a generic one, from `/proc/cpuinfo` read here.
    func expectedCore() throws -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        let flags = Set(line.split(separator: " ").map(String.init))
        let amd = cpuinfo.contains("AuthenticAMD")
        guard BLAS.isDynamicArch else { throw XCTSkip("OpenBLAS is not a DYNAMIC_ARCH build") }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            return flags.contains("avx512_bf16") && BLAS.supportedCores.contains("Cooperlake") ? "Cooperlake" : "SkylakeX"
        }
        if flags.isSuperset(of: ["avx2", "fma"]) { return amd ? "Zen" : "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        throw XCTSkip("this CPU has no AVX: no core to restart with")
    }

    let benchArguments = ["bench", "--shape", "64x96", "--batch", "8", "--sparsity", "0.9", "--threads", "1", "--runs", "1", "--json"]

    func testRestartsOnceWithTheCoreThatSuitsTheCPU() throws {
        let expected = try expectedCore()
        let r = try run(benchArguments, environment: environment([BLASCoreSelection.assumedCoreForTests: "Prescott"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssert(r.stderr.contains("picked its generic Prescott kernels"), r.stderr)
        XCTAssert(r.stderr.contains("restarted with OPENBLAS_CORETYPE=\(expected): core \(expected) now"), r.stderr)
        let blas = try XCTUnwrap(try json(r.stdout)["blas"] as? [String: Any], r.stdout)
        XCTAssertEqual(blas["core"] as? String, expected)
        XCTAssertEqual(blas["coretype"] as? String, expected)
        XCTAssertEqual(blas["restarted_from"] as? String, "Prescott")
        XCTAssert(blas["suggested_core"] is NSNull, "\(blas)")
    }

    func testLeavesAUsersCoreAlone() throws {
        let expected = try expectedCore()
        let r = try run(benchArguments, environment: environment(["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
        let blas = try XCTUnwrap(try json(r.stdout)["blas"] as? [String: Any], r.stdout)
        XCTAssertEqual(blas["core"] as? String, "Prescott")
        XCTAssertEqual(blas["coretype"] as? String, "Prescott")
        XCTAssertEqual(blas["suggested_core"] as? String, expected, "the report still names the better core")
        XCTAssert(blas["restarted_from"] is NSNull, "\(blas)")
        let text = try run(Array(benchArguments.dropLast()), environment: environment(["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssert(text.stdout.hasPrefix("OpenBLAS \(BLAS.version), core Prescott, "), text.stdout)
        XCTAssert(text.stdout.contains("note: Prescott is a generic core, OPENBLAS_CORETYPE=\(expected) suits this CPU"), text.stdout)

        // An empty value is the user's too: OpenBLAS picks its core, and the test knob does not restart.
        let empty = try run(benchArguments, environment: environment(["OPENBLAS_CORETYPE": "", BLASCoreSelection.assumedCoreForTests: "Prescott"]))
        XCTAssertEqual(empty.status, 0, empty.stderr)
        XCTAssertEqual(empty.stderr, "")
        let own = try XCTUnwrap(try json(empty.stdout)["blas"] as? [String: Any], empty.stdout)
        XCTAssertEqual(own["coretype"] as? String, "")
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil {
            XCTAssertEqual(own["core"] as? String, BLAS.coreName, "OpenBLAS's own choice, as in this test process")
        }
    }

    func testBenchReportsOpenBLAS() throws {
        // The test process's own OPENBLAS_CORETYPE, if any, so that the CLI runs the same core as this process.
        var e = ProcessInfo.processInfo.environment
        e[BLASCoreSelection.marker] = nil
        e[BLASCoreSelection.assumedCoreForTests] = nil
        e["OPENBLAS_NUM_THREADS"] = "1"
        let r = try run(benchArguments, environment: e)
        XCTAssertEqual(r.status, 0, r.stderr)
        let blas = try XCTUnwrap(try json(r.stdout)["blas"] as? [String: Any], r.stdout)
        XCTAssertEqual(blas["version"] as? String, BLAS.version)
        let restarted = e["OPENBLAS_CORETYPE"] == nil ? BLAS.suggestedCore : nil
        XCTAssertEqual(blas["core"] as? String, restarted ?? BLAS.coreName)
        XCTAssertEqual(blas["config"] as? String,
                       BLAS.buildConfiguration.replacingOccurrences(of: " \(BLAS.coreName) ", with: " \(restarted ?? BLAS.coreName) "))
        XCTAssertEqual(blas["threading"] as? String, BLAS.threading)
        XCTAssertEqual(blas["threads"] as? Int, 1, "OPENBLAS_NUM_THREADS")
        XCTAssertEqual(blas["coretype"] as? String, e["OPENBLAS_CORETYPE"] ?? restarted)
    }
}
