import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) import Topiary
@testable import TopiaryBenchmarking

final class SparseBenchmarkTests: XCTestCase {
    private typealias Shape = SparseBenchmark.Shape

    private func cell(_ shape: Shape, batch: Int = 1, threads: Int = 1, sparsity: Double, dense: Double, csr: Double) -> SparseBenchmark.Cell {
        SparseBenchmark.Cell(shape: shape, batch: batch, threads: threads, sparsity: sparsity, nonzeros: 10,
                             denseMilliseconds: dense, csrMilliseconds: csr, speedup: dense / csr, gflops: 1)
    }

    func testShapeParsesRowsByColumns() throws {
        XCTAssertEqual(try Shape(parsing: "300x784"), Shape(300, 784))
        XCTAssertEqual(try Shape(parsing: "4096X4096").description, "4096x4096")
        for bad in ["300", "x784", "300x", "0x5", "-3x4", "3x4x5", "axb", ""] {
            XCTAssertThrowsError(try Shape(parsing: bad), bad) { XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption) }
        }
    }

    func testConfigurationValidationRejectsBadValues() {
        var c = SparseBenchmark.Configuration.quick
        XCTAssertNoThrow(try c.validate())
        c.sparsities = [1.5]
        XCTAssertThrowsError(try c.validate())
        c = .quick; c.batches = [0]
        XCTAssertThrowsError(try c.validate())
        c = .quick; c.threads = []
        XCTAssertThrowsError(try c.validate())
    }

    func testFullGridIsTheIssueGrid() {
        let full = SparseBenchmark.Configuration.full
        XCTAssertEqual(full.shapes.map(\.description), ["300x784", "100x300", "1024x1024", "4096x4096"])
        XCTAssertEqual(full.batches, [1, 16, 128, 1024])
        XCTAssertEqual(full.sparsities, [0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99])
        XCTAssertEqual(full.threads, [1, 2])
    }

    func testAutomaticSummaryCountsRightPicksAndNamesTheWorst() {
        let s = Shape(10, 10)
        var a = cell(s, sparsity: 0.5, dense: 1, csr: 2), b = cell(s, sparsity: 0.9, dense: 1, csr: 0.5)
        var c = cell(s, sparsity: 0.7, dense: 1, csr: 0.95)
        (a.automatic, a.automaticSlowdown) = ("dense", 1)
        (b.automatic, b.automaticSlowdown) = ("dense", 2)        // CSR was twice as fast
        (c.automatic, c.automaticSlowdown) = ("dense", 1 / 0.95) // inside the 5% margin
        let r = SparseBenchmark.Results(results: [a, b, c], crossover: [], variant: "avx2")
        XCTAssertEqual(r.automaticSummary, "automatic: the faster path in 1 of 3 cells, within 10% of it in 2; "
                       + "worst 100.0% slower (10x10 batch 1 threads 1 sparsity 0.90, picking dense)")
        XCTAssertNil(SparseBenchmark.Results(results: [cell(s, sparsity: 0.5, dense: 1, csr: 2)], crossover: [], variant: "avx2").automaticSummary)
        XCTAssertTrue(r.table.contains("dense (100.0% slower)"))
    }

    /// Which path the automatic policy picks depends on timing, so only the recording is checked:
    /// the check runs exactly when asked for, and its fields are encoded under the issue's keys.
    func testCheckAutomaticRecordsAChoiceOnlyWhenAsked() throws {
        var c = SparseBenchmark.Configuration(shapes: [Shape(20, 30)], batches: [4], sparsities: [0, 0.95], threads: [1],
                                              warmupRuns: 0, runs: 3, secondsPerCell: 0)
        for cell in try SparseBenchmark.run(c).results {
            XCTAssertNil(cell.automatic)
            XCTAssertNil(cell.automaticSlowdown)
        }
        c.checkAutomatic = true
        for cell in try SparseBenchmark.run(c).results {
            XCTAssert(["dense", "csr"].contains(try XCTUnwrap(cell.automatic)), "\(cell)")
            XCTAssertNotNil(cell.automaticSlowdown)
        }
        var picked = cell(Shape(20, 30), sparsity: 0.95, dense: 1, csr: 0.5)
        (picked.automatic, picked.automaticSlowdown) = ("csr", 1)
        let json = String(decoding: try JSONEncoder().encode(picked), as: UTF8.self)
        XCTAssertTrue(json.contains("\"automatic\":\"csr\"") && json.contains("\"automatic_slowdown\":1"), json)
    }

    func testCrossoverIsTheLowestSparsityFromWhichCSRAlwaysWins() {
        let s = Shape(10, 10)
        let cells = [
            cell(s, sparsity: 0, dense: 1, csr: 2), cell(s, sparsity: 0.5, dense: 1, csr: 0.9),
            cell(s, sparsity: 0.7, dense: 1, csr: 1.1), cell(s, sparsity: 0.9, dense: 1, csr: 0.5),
            cell(s, sparsity: 0.99, dense: 1, csr: 0.1),
            cell(s, batch: 2, sparsity: 0.5, dense: 1, csr: 2), cell(s, batch: 2, sparsity: 0.9, dense: 1, csr: 3),
        ]
        let x = SparseBenchmark.crossovers(cells)
        XCTAssertEqual(x.count, 2)
        XCTAssertEqual(x[0].sparsity, 0.9)
        // Speedup 1/1.1 at 70% and 2 at 90%: 1 is reached (1/11)/(12/11) = 1/12 of the way, at 71.67%.
        XCTAssertEqual(x[0].slowerAt, 0.7)
        XCTAssertEqual(try XCTUnwrap(x[0].estimate), 0.716_666_666_666_7, accuracy: 1e-12)
        XCTAssertNil(x[1].sparsity)
        XCTAssertNil(x[1].slowerAt)
        XCTAssertNil(x[1].estimate)
        // CSR faster everywhere: no point below the crossover, nothing to interpolate.
        let all = SparseBenchmark.crossovers([cell(s, sparsity: 0.5, dense: 1, csr: 0.9), cell(s, sparsity: 0.9, dense: 1, csr: 0.2)])
        XCTAssertEqual(all.first?.sparsity, 0.5)
        XCTAssertNil(all.first?.slowerAt)
        XCTAssertNil(all.first?.estimate)
    }

    func testRegressionsAreRatiosWorseThanTheTolerance() {
        let s = Shape(10, 10)
        let base = SparseBenchmark.Results(results: [cell(s, sparsity: 0.9, dense: 1, csr: 0.2), cell(s, sparsity: 0.5, dense: 1, csr: 0.8)],
                                           crossover: [], variant: "avx2")
        let baseline = SparseBenchmark.Baseline(base, tolerance: 0.25)
        let now = SparseBenchmark.Results(results: [cell(s, sparsity: 0.9, dense: 2, csr: 0.6),    // 0.3 > 0.2·1.25
                                                    cell(s, sparsity: 0.5, dense: 2, csr: 1.9)],   // 0.95 ≤ 0.8·1.25
                                          crossover: [], variant: "avx2")
        let r = now.regressions(against: baseline)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r.first?.cell.sparsity, 0.9)
        XCTAssertEqual(r.first?.baselineRatio, 0.2)
        XCTAssertTrue(r.first?.description.contains("10x10") ?? false)
        XCTAssertEqual(now.regressions(against: baseline, tolerance: 0.6).count, 0)
        // A cell the baseline lacks is not compared, however slow.
        let unknown = SparseBenchmark.Results(results: [cell(s, batch: 64, sparsity: 0.9, dense: 1, csr: 100)], crossover: [], variant: "avx2")
        XCTAssertEqual(unknown.regressions(against: baseline), [])
    }

    func testBaselineRoundTripsThroughJSON() throws {
        let s = Shape(300, 784)
        let results = SparseBenchmark.Results(results: [cell(s, batch: 16, threads: 2, sparsity: 0.95, dense: 1, csr: 0.1)],
                                              crossover: [], variant: "avx2")
        let baseline = SparseBenchmark.Baseline(results, tolerance: 0.4)
        let path = NSTemporaryDirectory() + "topiary-baseline-\(getpid()).json"
        try baseline.jsonString().write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let read = try SparseBenchmark.Baseline(contentsOfFile: path)
        XCTAssertEqual(read, baseline)
        XCTAssertEqual(read.configuration.shapes, [s])
        XCTAssertEqual(read.configuration.batches, [16])
        XCTAssertEqual(read.configuration.threads, [2])
    }

    func testBaselineErrorsAreTyped() {
        XCTAssertThrowsError(try SparseBenchmark.Baseline(contentsOfFile: "/nonexistent/baseline.json")) {
            XCTAssertEqual(($0 as? TopiaryError)?.kind, .fileNotFound)
        }
        let path = NSTemporaryDirectory() + "topiary-bad-baseline-\(getpid()).json"
        try? "{\"cells\": 3}".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try SparseBenchmark.Baseline(contentsOfFile: path)) {
            XCTAssertEqual(($0 as? TopiaryError)?.kind, .corruptFile)
        }
    }

    func testValidationRefusesHugeBuffersBeforeAllocating() {
        func message(_ c: SparseBenchmark.Configuration) -> String? {
            do { try c.validate(); return nil } catch { return (error as? TopiaryError).map { "\($0.kind): \($0.message)" } ?? "\(error)" }
        }
        var c = SparseBenchmark.Configuration.quick
        c.shapes = [Shape(8192, 8192)]; c.batches = [1024]  // exactly 2^26 weights and inputs: allowed
        XCTAssertNil(message(c))
        c.shapes = [Shape(8193, 8192)]; c.batches = [1]  // weight rows·columns > 2^26
        XCTAssertEqual(message(c)?.contains("refused before allocating"), true, message(c) ?? "accepted")
        XCTAssertEqual(message(c)?.hasPrefix("invalidOption"), true, message(c) ?? "accepted")
        c.shapes = [Shape(1, 1 << 20)]; c.batches = [65]  // columns·batch > 2^26
        XCTAssertEqual(message(c)?.contains("refused before allocating"), true, message(c) ?? "accepted")
        c.shapes = [Shape(1 << 20, 1)]; c.batches = [65]  // rows·batch > 2^26
        XCTAssertEqual(message(c)?.contains("refused before allocating"), true, message(c) ?? "accepted")
        c.shapes = [Shape(Int.max, Int.max)]; c.batches = [1]  // would overflow the product
        XCTAssertEqual(message(c)?.contains("refused before allocating"), true, message(c) ?? "accepted")
        c.shapes = [Shape(0, 5)]
        XCTAssertNotNil(message(c))
    }

    func testBaselineWithAnUnrunnableGridIsACorruptFileNamingIt() {
        let path = NSTemporaryDirectory() + "topiary-unrunnable-baseline-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cell = #"{"shape": "64x96", "batch": 8, "threads": 1, "sparsity": 0.9, "ratio": 0.5}"#
        for bad in [#"{"tolerance": 0.1, "cells": []}"#,
                    cell.replacingOccurrences(of: #""batch": 8"#, with: #""batch": 0"#),
                    cell.replacingOccurrences(of: #""threads": 1"#, with: #""threads": 100"#),
                    cell.replacingOccurrences(of: #""sparsity": 0.9"#, with: #""sparsity": 2"#),
                    cell.replacingOccurrences(of: #""sparsity": 0.9"#, with: #""sparsity": 1e300"#),
                    cell.replacingOccurrences(of: #""64x96""#, with: #""1048576x1048576""#)] {
            let text = bad.hasPrefix(#"{"tolerance""#) ? bad : #"{"tolerance": 0.1, "cells": ["# + bad + "]}"
            try? text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try SparseBenchmark.Baseline(contentsOfFile: path), text) {
                XCTAssertEqual(($0 as? TopiaryError)?.kind, .corruptFile, text)
                XCTAssert(($0 as? TopiaryError)?.message.contains(path) == true, "\($0)")
            }
        }
        try? (#"{"tolerance": 0.1, "cells": ["# + cell + "]}").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertNoThrow(try SparseBenchmark.Baseline(contentsOfFile: path))
    }

    func testResultsEncodeTheIssueKeys() throws {
        let results = SparseBenchmark.Results(results: [cell(Shape(4096, 4096), sparsity: 0.9, dense: 2, csr: 0.5)],
                                              crossover: [SparseBenchmark.Crossover(shape: Shape(4096, 4096), batch: 1, threads: 1, sparsity: 0.5)],
                                              variant: "avx2")
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(results)) as? [String: Any]
        let first = (object?["results"] as? [[String: Any]])?.first
        XCTAssertEqual(first?["shape"] as? String, "4096x4096")
        XCTAssertEqual(first?["dense_ms"] as? Double, 2)
        XCTAssertEqual(first?["csr_ms"] as? Double, 0.5)
        XCTAssertEqual(first?["speedup"] as? Double, 4)
        XCTAssertNotNil(first?["batch"]); XCTAssertNotNil(first?["threads"]); XCTAssertNotNil(first?["sparsity"])
        let crossover = (object?["crossover"] as? [[String: Any]])?.first
        XCTAssertEqual(crossover?["sparsity"] as? Double, 0.5)
        let crossed = try JSONEncoder().encode(SparseBenchmark.Crossover(shape: Shape(8, 8), batch: 1, threads: 1, sparsity: 0.7,
                                                                        slowerAt: 0.5, estimate: 0.56))
        let keys = try JSONSerialization.jsonObject(with: crossed) as? [String: Any]
        XCTAssertEqual(keys?["slower_at"] as? Double, 0.5)
        XCTAssertEqual(keys?["estimate"] as? Double, 0.56)
    }

    func testRandomWeightHasExactlyTheRequestedZeros() {
        var rng = SeededRandom(seed: 1)
        for s in [0, 0.3, 0.5, 0.9, 1.0] {
            let w = SparseBenchmark.randomWeight(Shape(37, 53), sparsity: s, rng: &rng)
            XCTAssertEqual(w.count - w.nonzeroCount, Int((s * Double(w.count)).rounded()), "s=\(s)")
        }
    }

    func testARunMeasuresExactlyTheConfiguredCellsInGridOrder() throws {
        func cells(_ r: SparseBenchmark.Results) throws -> [String] {
            r.results.map { "\($0.shape) \($0.batch) \($0.threads) \($0.sparsity) \($0.nonzeros)" }
        }
        var c = SparseBenchmark.Configuration(shapes: [Shape(20, 30), Shape(7, 11)], batches: [4, 1], sparsities: [0.9, 0],
                                              threads: [1], warmupRuns: 0, runs: 3, secondsPerCell: 0, seed: 3)
        var r = try SparseBenchmark.run(c)
        // Shape, then batch, then threads, then sparsity, each in the configured order;
        // round(0.9 · 600) = 540 and round(0.9 · 77) = 69 weights pruned.
        XCTAssertEqual(try cells(r), ["20x30 4 1 0.9 60", "20x30 4 1 0.0 600", "20x30 1 1 0.9 60", "20x30 1 1 0.0 600",
                                  "7x11 4 1 0.9 8", "7x11 4 1 0.0 77", "7x11 1 1 0.9 8", "7x11 1 1 0.0 77"])
        XCTAssertEqual(r.crossover.map { "\($0.shape) \($0.batch) \($0.threads)" }, ["20x30 4 1", "20x30 1 1", "7x11 4 1", "7x11 1 1"])
        // Thread counts too (a two-thread cell pauses between blocks: one cell only; two threads
        // run as one on one processor).
        try XCTSkipIf(Threads.processors < 2, "one processor: 2 threads are measured as 1")
        c.shapes = [Shape(7, 11)]; c.batches = [1]; c.sparsities = [0.9]; c.threads = [2, 1]
        r = try SparseBenchmark.run(c)
        XCTAssertEqual(try cells(r), ["7x11 1 2 0.9 8", "7x11 1 1 0.9 8"])
    }

    /// The timed paths of a cell are only comparable if they compute the same product: dense
    /// batch-major (`sgemv` / `X·Wᵀ`), CSR and dense feature-major (`W·X`) on the same samples.
    func testEveryPathOfACellComputesTheSameProduct() throws {
        var rng = SeededRandom(seed: 11)
        for (shape, batch, sparsity) in [(Shape(13, 29), 1, 0.0), (Shape(13, 29), 1, 0.9), (Shape(40, 70), 5, 0.5),
                                         (Shape(40, 70), 37, 0.95), (Shape(64, 300), 130, 0.9)] {
            let (m, k) = (shape.rows, shape.columns)
            let w = SparseBenchmark.randomWeight(shape, sparsity: sparsity, rng: &rng)
            let sparse = SparseDense(weight: CSRMatrix(w), bias: [Float](repeating: 0, count: m))
            let x = (0..<(k * batch)).map { _ in rng.nextUniform(-1, 1) }   // feature-major [columns, batch]
            // The reference, feature-major [rows, batch], in Double.
            var expected = [Float](repeating: 0, count: m * batch)
            for i in 0..<m {
                for b in 0..<batch {
                    var sum = 0.0
                    for j in 0..<k { sum += Double(w.storage[i * k + j]) * Double(x[j * batch + b]) }
                    expected[i * batch + b] = Float(sum)
                }
            }
            for threads in [1, 2] {
                var y = [Float](repeating: .nan, count: m * batch)
                var outputs: [[Float]] = []
                w.storage.withUnsafeBufferPointer { pw in
                    x.withUnsafeBufferPointer { px in
                        y.withUnsafeMutableBufferPointer { py in
                            let paths = SparseBenchmark.products(weight: pw.baseAddress!, sparse: sparse, batch: batch,
                                                                 input: px.baseAddress!, into: py.baseAddress!,
                                                                 threads: threads, variant: SparseKernels.bestVariant)
                            XCTAssertEqual(paths.count, batch > 1 ? 3 : 2)
                            for path in paths {
                                py.update(repeating: .nan)
                                path()
                                outputs.append(Array(py))
                            }
                        }
                    }
                }
                let label = "\(shape) batch \(batch) sparsity \(sparsity) threads \(threads)"
                // The batch-major path writes [batch, rows]: transpose it.
                let batchMajor = outputs[0]
                assertClose((0..<(m * batch)).map { batchMajor[($0 % batch) * m + $0 / batch] }, expected, "dense batch-major, " + label)
                for (name, output) in zip(["CSR", "dense feature-major"], outputs.dropFirst()) {
                    assertClose(output, expected, name + ", " + label)
                }
            }
        }
    }

    func testNetworkBenchmarkMeasuresEachBatchInOrder() throws {
        let net = try Chain(sizes: [30, 20, 5], seed: 1)
        let r = try SparseBenchmark.network(net, batches: [8, 1], threads: [1], secondsPerCase: 0)
        XCTAssertEqual(r.map { "\($0.threads) \($0.batch)" }, ["1 8", "1 1"])
        for x in r {
            XCTAssertEqual(x.sparsity, net.sparsity)
            XCTAssertEqual(x.layers.count, 2)
            XCTAssert(x.layers.allSatisfy { $0 == "dense" || $0 == "sparse" }, "\(x.layers)")
        }
        XCTAssertTrue(SparseBenchmark.table(r).contains("us/sample"))
    }

    func testLeNetIsPrunedToEachRequestedSparsity() throws {
        let r = try SparseBenchmark.lenet(sparsities: [0, 0.9], batches: [1], threads: [1], secondsPerCase: 0)
        XCTAssertEqual(r.count, 2)
        XCTAssertEqual(r[0].sparsity, 0)
        XCTAssertEqual(r[1].sparsity, 0.9, accuracy: 1e-12)   // each layer pruned to exactly 90%
        XCTAssertEqual(r.map(\.layers.count), [3, 3])
    }

    /// Test helper: asserts two float arrays agree within `relative · max(1, |expected|)`.
    private func assertClose(_ actual: [Float], _ expected: [Float], relative: Float = 1e-5, _ message: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
        let worst = zip(actual, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssert(worst <= relative, "max relative error \(worst): \(message)", file: file, line: line)
    }

    func testUsableThreadsLowerToTheProcessorsAndDropDuplicates() {
        let n = Threads.processors
        XCTAssertEqual(SparseBenchmark.usableThreads([1, n + 1, n, 2 * n + 5]), n == 1 ? [1] : [1, n])
        XCTAssertEqual(SparseBenchmark.usableThreads([n + 3, 1]), n == 1 ? [1] : [n, 1])
    }
}

final class TrainingAndPruningBenchmarkTests: XCTestCase {
    /// An epoch's products: forward and weight gradient for every layer, the input gradient for
    /// all but the first (nothing consumes the gradient of the images).
    func testEpochFlopsCountsTheProductsOfAnEpoch() {
        let forward = 784.0 * 300 + 300 * 100 + 100 * 10
        let inputGradient = 300.0 * 100 + 100 * 10
        XCTAssertEqual(TrainingBenchmark.epochFlops(sizes: [784, 300, 100, 10], examples: 3),
                       2 * 3 * (2 * forward + inputGradient))
    }

    func testPruningBenchmarkRejectsNoRuns() {
        XCTAssertThrowsError(try PruningBenchmark.globalMagnitudeStep(sizes: [4, 3, 2], runs: 0)) {
            XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption)
        }
        XCTAssertThrowsError(try PruningBenchmark.globalMagnitudeStep(sizes: [4, 3, 2], sparsity: 1.5, runs: 1)) {
            XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption)
        }
    }
}
