import Foundation
@_spi(Benchmarking) @_spi(Kernels) import Topiary

/// Dense-masked versus compressed inference, measured: the grid, baseline and network modes of `topiary bench`.
///
/// For every cell of a grid (layer shape × batch size × sparsity × threads) it times the dense
/// product on the masked weight (OpenBLAS `sgemm`, `sgemv` at batch 1; the faster of the
/// batch-major `X·Wᵀ` used by `Chain` and the feature-major `W·X` used by `CompiledNetwork`)
/// and the CSR kernels on the same weight in the same run, with warm-up and the median of several
/// runs: interleaved call by call with one thread, in blocks separated by pauses with more (so
/// that OpenBLAS's spinning idle workers do not share a core with the CSR path; see
/// `Timing.timePaths`). Speedup is dense time / CSR time; useful GFLOP/s counts `2·nnz·B`.
///
/// ```swift
/// let results = SparseBenchmark.run(.quick)
/// print(results.table)
/// let regressions = results.regressions(against: try SparseBenchmark.Baseline(contentsOfFile: "Benchmarks/baseline.json"))
/// ```
public enum SparseBenchmark {
    /// A layer shape, `rows × columns` (outputs × inputs), written `"300x784"`.
    public struct Shape: Hashable, Sendable, Codable, CustomStringConvertible {
        /// Outputs.
        public var rows: Int
        /// Inputs.
        public var columns: Int

        /// Creates a shape.
        public init(_ rows: Int, _ columns: Int) {
            self.rows = rows
            self.columns = columns
        }

        /// Parses `"300x784"`.
        ///
        /// - Throws: `TopiaryError` `.invalidOption` unless the text is two positive integers joined by `x`.
        public init(parsing text: String) throws {
            let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
            guard parts.count == 2, let r = Int(parts[0]), let c = Int(parts[1]), r > 0, c > 0,
                  r <= 1 << 20, c <= 1 << 20 else {
                throw TopiaryError(.invalidOption, "invalid shape \"\(text)\": expected ROWSxCOLUMNS, for example 300x784")
            }
            self.init(r, c)
        }

        /// `"300x784"`.
        public var description: String { "\(rows)x\(columns)" }

        /// Encoded as the string `"300x784"`.
        public init(from decoder: Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            try self.init(parsing: text)
        }

        /// Encodes as the string `"300x784"`.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(description)
        }
    }

    /// What to measure.
    public struct Configuration: Sendable, Equatable {
        /// Layer shapes.
        public var shapes: [Shape]
        /// Batch sizes.
        public var batches: [Int]
        /// Weight sparsities in `[0, 1]`.
        public var sparsities: [Double]
        /// Thread counts.
        public var threads: [Int]
        /// Untimed runs before measuring.
        public var warmupRuns: Int
        /// Timed runs per cell (at least 3); the median is reported.
        public var runs: Int
        /// Stop adding runs to a cell once its paths have used about this many seconds (keeps big
        /// cells affordable). With two or more threads each path also waits 3 × 0.15 s in pauses
        /// and warms up for 3 × 20 ms, and runs at least `runs` timed calls.
        public var secondsPerCell: Double
        /// Seed of the random weights and inputs.
        public var seed: UInt64
        /// Also compile each cell's layer with `CompiledNetwork.Policy.automatic` (at the cell's
        /// batch size and thread count) and record which path it picked against the cell's own
        /// measurement (``Cell/automatic``, ``Cell/automaticSlowdown``).
        public var checkAutomatic: Bool

        /// Creates a configuration.
        public init(shapes: [Shape], batches: [Int], sparsities: [Double], threads: [Int],
                    warmupRuns: Int = 2, runs: Int = 11, secondsPerCell: Double = 1.0, seed: UInt64 = 42,
                    checkAutomatic: Bool = false) {
            self.shapes = shapes
            self.batches = batches
            self.sparsities = sparsities
            self.threads = threads
            self.warmupRuns = warmupRuns
            self.runs = runs
            self.secondsPerCell = secondsPerCell
            self.seed = seed
            self.checkAutomatic = checkAutomatic
        }

        /// The full grid of issue 4: {300×784, 100×300, 1024×1024, 4096×4096} × batch {1, 16, 128, 1024}
        /// × sparsity {0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99} × threads {1, 2}.
        public static let full = Configuration(
            shapes: [Shape(300, 784), Shape(100, 300), Shape(1024, 1024), Shape(4096, 4096)],
            batches: [1, 16, 128, 1024],
            sparsities: [0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
            threads: [1, 2])

        /// A small grid, for CI and the committed baseline: 1.6 s with one thread, 65 s with the
        /// two-thread cells and their pauses (`topiary bench --quick`, development machine).
        public static let quick = Configuration(
            shapes: [Shape(300, 784), Shape(100, 300), Shape(1024, 1024)],
            batches: [1, 16, 128],
            sparsities: [0, 0.5, 0.9, 0.95, 0.99],
            threads: [1, 2],
            warmupRuns: 2, runs: 7, secondsPerCell: 0.25)

        /// The most floats one buffer of a cell may hold (the weight `rows·columns`, the input
        /// `columns·batch`, the output `rows·batch`): 2²⁶, 256 MiB.
        public static let maximumBufferElements = 1 << 26

        /// Checks the values a user may type, before anything is allocated.
        ///
        /// - Throws: `TopiaryError` `.invalidOption` for an empty list, a batch or thread count
        ///   below 1 (threads above 64), a sparsity outside `[0, 1]`, fewer than 1 run, a shape
        ///   with a dimension below 1, or a cell whose weight (`rows·columns`), input
        ///   (`columns·batch`) or output (`rows·batch`) would exceed ``maximumBufferElements`` floats.
        public func validate() throws {
            func fail(_ m: String) -> TopiaryError { TopiaryError(.invalidOption, m) }
            guard !shapes.isEmpty, !batches.isEmpty, !sparsities.isEmpty, !threads.isEmpty else {
                throw fail("the benchmark grid needs at least one shape, batch size, sparsity and thread count")
            }
            if let b = batches.first(where: { $0 < 1 || $0 > 1 << 16 }) { throw fail("batch size \(b) is outside 1...65536") }
            if let t = threads.first(where: { $0 < 1 || $0 > 64 }) { throw fail("thread count \(t) is outside 1...64") }
            if let s = sparsities.first(where: { !($0 >= 0 && $0 <= 1) }) { throw fail("sparsity \(s) is outside [0, 1]") }
            guard runs >= 1, warmupRuns >= 0 else { throw fail("runs must be at least 1") }
            guard secondsPerCell.isFinite, secondsPerCell >= 0 else { throw fail("seconds per cell \(secondsPerCell) is not a finite non-negative number") }
            let limit = Configuration.maximumBufferElements
            func fits(_ a: Int, _ b: Int) -> Bool {
                let (p, overflow) = a.multipliedReportingOverflow(by: b)
                return !overflow && p <= limit
            }
            let maxBatch = batches.max() ?? 1
            for shape in shapes {
                guard shape.rows >= 1, shape.columns >= 1 else { throw fail("shape \(shape) needs at least one row and one column") }
                guard fits(shape.rows, shape.columns) else {
                    throw fail("shape \(shape) has \(shape.rows)·\(shape.columns) weights, more than \(limit) (2^26): refused before allocating")
                }
                guard fits(shape.columns, maxBatch) else {
                    throw fail("shape \(shape) at batch \(maxBatch) needs an input of \(shape.columns)·\(maxBatch) floats, more than \(limit) (2^26): refused before allocating")
                }
                guard fits(shape.rows, maxBatch) else {
                    throw fail("shape \(shape) at batch \(maxBatch) needs an output of \(shape.rows)·\(maxBatch) floats, more than \(limit) (2^26): refused before allocating")
                }
            }
        }
    }

    /// One measured cell.
    public struct Cell: Sendable, Codable, Equatable {
        /// The layer shape.
        public var shape: Shape
        /// The batch size.
        public var batch: Int
        /// Threads for both paths.
        public var threads: Int
        /// The requested weight sparsity.
        public var sparsity: Double
        /// Stored non-zeros.
        public var nonzeros: Int
        /// Median milliseconds per dense-masked product.
        public var denseMilliseconds: Double
        /// Median milliseconds per CSR product.
        public var csrMilliseconds: Double
        /// `dense / csr`.
        public var speedup: Double
        /// Useful GFLOP/s of the CSR product, `2·nnz·B / time`.
        public var gflops: Double
        /// The path (`"dense"` or `"csr"`, the names of this table's columns; `CompiledNetwork`
        /// calls the latter `sparse`) that a one-layer `CompiledNetwork` compiled with
        /// `CompiledNetwork.Policy.automatic` picked for this cell; `nil` unless
        /// ``Configuration/checkAutomatic``.
        public var automatic: String?
        /// The measured time of the path ``automatic`` picked over the faster path's (1 when it
        /// picked the faster one); `nil` unless ``Configuration/checkAutomatic``.
        public var automaticSlowdown: Double?

        enum CodingKeys: String, CodingKey {
            case shape, batch, threads, sparsity, nonzeros
            case denseMilliseconds = "dense_ms", csrMilliseconds = "csr_ms", speedup, gflops
            case automatic, automaticSlowdown = "automatic_slowdown"
        }

        /// CSR time / dense time: the machine-independent number the baseline keeps.
        public var ratio: Double { csrMilliseconds / denseMilliseconds }
    }

    /// Where CSR starts to win for one shape, batch and thread count.
    public struct Crossover: Sendable, Codable, Equatable {
        /// The layer shape.
        public var shape: Shape
        /// The batch size.
        public var batch: Int
        /// Threads.
        public var threads: Int
        /// The lowest measured sparsity from which CSR is faster at every higher measured sparsity;
        /// `nil` when CSR never wins on the grid.
        public var sparsity: Double?
        /// The measured sparsity just below ``sparsity``, where CSR was not faster; `nil` when CSR
        /// won at every measured sparsity, or never.
        public var slowerAt: Double?
        /// Where the speedup crosses 1 between ``slowerAt`` and ``sparsity``, interpolated linearly:
        /// a grid's points can be far apart (at 50% and 70%, say), and the crossover anywhere
        /// between them. `nil` without ``slowerAt``.
        public var estimate: Double?

        /// A crossover; `slowerAt` and `estimate` default to `nil`.
        public init(shape: Shape, batch: Int, threads: Int, sparsity: Double?, slowerAt: Double? = nil, estimate: Double? = nil) {
            self.shape = shape
            self.batch = batch
            self.threads = threads
            self.sparsity = sparsity
            self.slowerAt = slowerAt
            self.estimate = estimate
        }

        enum CodingKeys: String, CodingKey {
            case shape, batch, threads, sparsity, slowerAt = "slower_at", estimate
        }
    }

    /// The outcome of a run: every cell and the crossovers.
    public struct Results: Sendable, Codable, Equatable {
        /// The measured cells, in grid order.
        public var results: [Cell]
        /// The crossover per shape, batch and thread count.
        public var crossover: [Crossover]
        /// The CSR kernel variant measured.
        public var variant: String

        /// A plain-text table: one line per cell, then the crossovers (and, with
        /// ``Configuration/checkAutomatic``, how the automatic policy chose).
        public var table: String {
            let checked = results.contains { $0.automatic != nil }
            var lines = ["shape      batch threads sparsity  dense_ms    csr_ms  speedup  GFLOP/s" + (checked ? "  automatic" : "")]
            for c in results {
                var line = InferenceSupport.pad(c.shape.description, 11) + InferenceSupport.pad("\(c.batch)", 6)
                    + InferenceSupport.pad("\(c.threads)", 8) + InferenceSupport.pad(InferenceSupport.fixed(c.sparsity, 2), 9)
                    + InferenceSupport.pad(InferenceSupport.fixed(c.denseMilliseconds, 4), 10)
                    + InferenceSupport.pad(InferenceSupport.fixed(c.csrMilliseconds, 4), 10)
                    + InferenceSupport.pad(InferenceSupport.fixed(c.speedup, 2) + "x", 9)
                    + InferenceSupport.fixed(c.gflops, 1)
                if let a = c.automatic, let slow = c.automaticSlowdown {
                    line = InferenceSupport.pad(line, 72) + a + (slow > 1 ? " (\(InferenceSupport.fixed((slow - 1) * 100, 1))% slower)" : "")
                }
                lines.append(line)
            }
            if checked, let summary = automaticSummary {
                lines.append("")
                lines.append(summary)
            }
            lines.append("")
            lines.append("crossover (CSR faster from this sparsity up):")
            for c in crossover {
                var s = c.sparsity.map { InferenceSupport.fixed($0, 2) } ?? "never"
                if let below = c.slowerAt, let e = c.estimate {
                    s += " (not at \(InferenceSupport.fixed(below, 2)); speedup 1 at about \(InferenceSupport.fixed(e, 2)), interpolated)"
                }
                lines.append("  \(c.shape) batch \(c.batch) threads \(c.threads): \(s)")
            }
            return lines.joined(separator: "\n")
        }

        /// How the automatic policy chose over the checked cells: how many picked the faster path,
        /// and the worst slowdown with its cell; `nil` when no cell was checked.
        public var automaticSummary: String? {
            let checked = results.filter { $0.automaticSlowdown != nil }
            guard let worst = checked.max(by: { $0.automaticSlowdown! < $1.automaticSlowdown! }),
                  let slow = worst.automaticSlowdown else { return nil }
            let right = checked.filter { $0.automaticSlowdown! <= 1 }.count
            let within = checked.filter { $0.automaticSlowdown! <= 1.1 }.count
            return "automatic: the faster path in \(right) of \(checked.count) cells, within 10% of it in \(within); "
                + (slow > 1 ? "worst \(InferenceSupport.fixed((slow - 1) * 100, 1))% slower (\(worst.shape) batch \(worst.batch) "
                    + "threads \(worst.threads) sparsity \(InferenceSupport.fixed(worst.sparsity, 2)), picking \(worst.automatic ?? "?"))"
                    : "never slower")
        }

        /// The cells whose CSR/dense ratio is worse than the baseline's by more than `tolerance`
        /// (`measured > baseline · (1 + tolerance)`); cells missing from either side are skipped.
        public func regressions(against baseline: Baseline, tolerance: Double? = nil) -> [Regression] {
            let tol = tolerance ?? baseline.tolerance
            var expected: [Baseline.Key: Double] = [:]
            for e in baseline.cells { expected[e.key] = e.ratio }
            return results.compactMap { c in
                let key = Baseline.Key(shape: c.shape, batch: c.batch, threads: c.threads, sparsity: c.sparsity)
                guard let r = expected[key], c.ratio > r * (1 + tol) else { return nil }
                return Regression(cell: c, baselineRatio: r, tolerance: tol)
            }
        }
    }

    /// A committed reference of CSR/dense time ratios per cell, which survive a change of machine
    /// speed far better than absolute times.
    public struct Baseline: Sendable, Codable, Equatable {
        /// One cell's reference ratio.
        public struct Entry: Sendable, Codable, Equatable {
            /// The layer shape.
            public var shape: Shape
            /// The batch size.
            public var batch: Int
            /// Threads.
            public var threads: Int
            /// The sparsity.
            public var sparsity: Double
            /// CSR time / dense time.
            public var ratio: Double

            var key: Key { Key(shape: shape, batch: batch, threads: threads, sparsity: sparsity) }
        }

        struct Key: Hashable {
            var shape: Shape
            var batch: Int
            var threads: Int
            var sparsityPermille: Int
            init(shape: Shape, batch: Int, threads: Int, sparsity: Double) {
                self.shape = shape
                self.batch = batch
                self.threads = threads
                // Clamped, so a value no validation has seen cannot trap the conversion.
                let permille = (sparsity * 1000).rounded()
                self.sparsityPermille = permille.isNaN ? Int.min : Int(max(-1e15, min(1e15, permille)))
            }
        }

        /// The allowed relative worsening of a ratio before a cell counts as a regression.
        public var tolerance: Double
        /// The reference cells.
        public var cells: [Entry]

        /// The baseline of `results` with the given tolerance.
        public init(_ results: Results, tolerance: Double = 0.5) {
            self.tolerance = tolerance
            self.cells = results.results.map {
                Entry(shape: $0.shape, batch: $0.batch, threads: $0.threads, sparsity: $0.sparsity,
                      ratio: ($0.ratio * 10_000).rounded() / 10_000)
            }
        }

        /// Reads a baseline JSON file.
        ///
        /// - Throws: `TopiaryError` `.fileNotFound` or `.corruptFile`.
        public init(contentsOfFile path: String) throws {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TopiaryError(.fileNotFound, "cannot read the benchmark baseline \(path)")
            }
            do {
                self = try JSONDecoder().decode(Baseline.self, from: data)
            } catch {
                throw TopiaryError(.corruptFile, "\(path) is not a benchmark baseline: \(error)")
            }
            guard tolerance >= 0, cells.allSatisfy({ $0.ratio > 0 && $0.ratio.isFinite }) else {
                throw TopiaryError(.corruptFile, "\(path): the tolerance and every ratio must be positive")
            }
            try validate(path: path)
        }

        /// Checks that every cell, and so the grid ``configuration`` re-measures, is one
        /// ``SparseBenchmark/run(_:progress:)`` accepts.
        ///
        /// - Throws: `TopiaryError` `.corruptFile` naming `path` and the offending value.
        func validate(path: String) throws {
            func fail(_ m: String) -> TopiaryError { TopiaryError(.corruptFile, "\(path) is not a usable benchmark baseline: \(m)") }
            guard !cells.isEmpty else { throw fail("it has no cells") }
            for (i, e) in cells.enumerated() {
                var one = Configuration.quick
                one.shapes = [e.shape]; one.batches = [e.batch]; one.threads = [e.threads]; one.sparsities = [e.sparsity]
                do { try one.validate() } catch let error as TopiaryError { throw fail("cell \(i): \(error.message)") }
            }
            do { try configuration.validate() } catch let error as TopiaryError { throw fail(error.message) }
        }

        /// The baseline as pretty-printed JSON with sorted keys.
        public func jsonString() throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        }

        /// The configuration that re-measures exactly this baseline's grid, with `quick`'s run counts.
        public var configuration: Configuration {
            func unique<T: Hashable>(_ xs: [T]) -> [T] { var seen = Set<T>(); return xs.filter { seen.insert($0).inserted } }
            var c = Configuration.quick
            c.shapes = unique(cells.map(\.shape))
            c.batches = unique(cells.map(\.batch))
            c.sparsities = unique(cells.map(\.sparsity))
            c.threads = unique(cells.map(\.threads))
            return c
        }
    }

    /// A cell slower than its baseline ratio allows.
    public struct Regression: Sendable, Equatable, CustomStringConvertible {
        /// The measured cell.
        public var cell: Cell
        /// The baseline's CSR/dense ratio.
        public var baselineRatio: Double
        /// The tolerance applied.
        public var tolerance: Double

        /// A sentence naming the cell and both ratios.
        public var description: String {
            "\(cell.shape) batch \(cell.batch) threads \(cell.threads) sparsity \(InferenceSupport.fixed(cell.sparsity, 2)): "
                + "CSR/dense \(InferenceSupport.fixed(cell.ratio, 4)), baseline \(InferenceSupport.fixed(baselineRatio, 4)) "
                + "(tolerance \(Int((tolerance * 100).rounded()))%)"
        }
    }

    // MARK: - Running

    /// Measures every cell of `configuration`, calling `progress` after each.
    ///
    /// OpenBLAS's thread count (`BLAS.threadCount`) is set to each cell's thread count and restored
    /// afterwards. Thread counts above the processors the process may run on are measured, and
    /// reported, at that number (see ``usableThreads(_:)``).
    /// - Throws: `configuration.validate()`'s errors.
    public static func run(_ configuration: Configuration, progress: ((Cell) -> Void)? = nil) throws -> Results {
        try configuration.validate()
        let v = SparseKernels.bestVariant
        let savedThreads = BLAS.threadCount
        defer { BLAS.threadCount = savedThreads }
        var cells: [Cell] = []
        var rng = SeededRandom(seed: configuration.seed)
        for shape in configuration.shapes {
            for batch in configuration.batches {
                let x = (0..<(shape.columns * batch)).map { _ in rng.nextUniform(-1, 1) }
                var y = [Float](repeating: 0, count: shape.rows * batch)
                for threads in usableThreads(configuration.threads) {
                    for sparsity in configuration.sparsities {
                        let w = randomWeight(shape, sparsity: sparsity, rng: &rng)
                        let cell = try measure(shape: shape, batch: batch, threads: threads, sparsity: sparsity,
                                           weight: w, x: x, y: &y, configuration: configuration, variant: v)
                        cells.append(cell)
                        progress?(cell)
                    }
                }
            }
        }
        return Results(results: cells, crossover: crossovers(cells), variant: v.rawValue)
    }

    /// `counts` as Topiary runs them: each lowered to the processors the process may run on
    /// (`Threads.usable`), duplicates dropped, in order.
    public static func usableThreads(_ counts: [Int]) -> [Int] {
        var seen = Set<Int>()
        return counts.map(Threads.usable).filter { seen.insert($0).inserted }
    }

    /// Re-measures the cells of `baseline` and returns the regressions beyond `tolerance` (the
    /// baseline's own when `nil`). A cell that regresses is measured `remeasurements` more times and
    /// counts only if it regresses every time, so a burst of load on a shared machine does not fail
    /// a check while a real slowdown does.
    public static func check(baseline: Baseline, tolerance: Double? = nil, remeasurements: Int = 2,
                             progress: ((Cell) -> Void)? = nil) throws -> (results: Results, regressions: [Regression]) {
        let results = try run(baseline.configuration, progress: progress)
        // A cell over the limit is measured again, up to `remeasurements` times: a real regression
        // fails every time, while a burst of load from another process on this shared machine does not.
        let regressions = try results.regressions(against: baseline, tolerance: tolerance).filter { r in
            var c = baseline.configuration
            c.shapes = [r.cell.shape]; c.batches = [r.cell.batch]; c.threads = [r.cell.threads]; c.sparsities = [r.cell.sparsity]
            return try (0..<remeasurements).allSatisfy { _ in try !run(c).regressions(against: baseline, tolerance: tolerance).isEmpty }
        }
        return (results, regressions)
    }

    /// A weight with exactly `round(sparsity · count)` zeros at random positions.
    static func randomWeight(_ shape: Shape, sparsity: Double, rng: inout SeededRandom) -> Matrix {
        var w = Matrix(rows: shape.rows, columns: shape.columns)
        let n = w.count
        let keep = n - Int((sparsity * Double(n)).rounded())
        // Floyd's sampling of the smaller of the kept and the pruned sets, marked in a byte map.
        let pickPruned = keep > n / 2
        let count = pickPruned ? n - keep : keep
        var marked = [UInt8](repeating: 0, count: n)
        for j in (n - count)..<n {
            let t = rng.nextInt(below: j + 1)
            if marked[t] == 0 { marked[t] = 1 } else { marked[j] = 1 }
        }
        w.storage.withUnsafeMutableBufferPointer { p in
            for i in 0..<n where (marked[i] == 1) != pickPruned {
                var v = rng.nextUniform(-1, 1)
                if v == 0 { v = 0.5 }
                p[i] = v
            }
        }
        return w
    }

    /// The products a cell times, as calls on raw buffers, all of `W` and the same feature-major
    /// input `x` (`[columns, batch]`): dense batch-major (`sgemv` at batch 1, else `Y = X·Wᵀ` as
    /// `Chain` computes it, `X` read as the transpose of `x`), CSR, and for batches above 1 dense
    /// feature-major (`W·X`). Sharing one input keeps it as warm in cache for every path as a
    /// layer's input is. The batch-major path writes `y` as `[batch, rows]`, the others as `[rows, batch]`.
    static func products(weight w: UnsafePointer<Float>, sparse: SparseDense, batch: Int,
                         input x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int,
                         variant: SparseKernels.Variant) -> [() -> Void] {
        let (m, k) = (sparse.outputSize, sparse.inputSize)
        let denseBatchMajor = {
            if batch == 1 {
                BLAS.gemv(.none, rows: m, columns: k, a: w, lda: k, x: x, y: y)
            } else {
                BLAS.gemm(.transpose, .transpose, m: batch, n: m, k: k, a: x, lda: batch, b: w, ldb: k, c: y, ldc: m)
            }
        }
        let csr = { sparse.forward(featureMajor: x, batch: batch, into: y, threads: threads, variant: variant) }
        let denseFeatureMajor = {
            BLAS.gemm(.none, .none, m: m, n: batch, k: k, a: w, lda: k, b: x, ldb: batch, c: y, ldc: batch)
        }
        return batch > 1 ? [denseBatchMajor, csr, denseFeatureMajor] : [denseBatchMajor, csr]
    }

    private static func measure(shape: Shape, batch: Int, threads: Int, sparsity: Double, weight w: Matrix,
                                x: [Float], y: inout [Float], configuration c: Configuration,
                                variant: SparseKernels.Variant) throws -> Cell {
        let m = shape.rows
        let sparse = SparseDense(weight: CSRMatrix(w), bias: [Float](repeating: 0, count: m))
        BLAS.threadCount = threads
        var bm: [Double] = [], fm: [Double] = [], cs: [Double] = []
        w.storage.withUnsafeBufferPointer { pw in
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    let paths = products(weight: pw.baseAddress!, sparse: sparse, batch: batch, input: px.baseAddress!,
                                         into: py.baseAddress!, threads: threads, variant: variant)
                    let times = Timing.timePaths(paths, threads: threads, runs: c.runs, warmup: c.warmupRuns,
                                                 budget: c.secondsPerCell)
                    (bm, cs) = (times[0], times[1])
                    if times.count > 2 { fm = times[2] }
                }
            }
        }
        let dense = min(Timing.median(bm), fm.isEmpty ? .infinity : Timing.median(fm))
        let csr = Timing.median(cs)
        let nnz = sparse.weight.nonzeroCount
        var cell = Cell(shape: shape, batch: batch, threads: threads, sparsity: sparsity, nonzeros: nnz,
                        denseMilliseconds: dense * 1e3, csrMilliseconds: csr * 1e3, speedup: dense / csr,
                        gflops: 2 * Double(nnz) * Double(batch) / csr / 1e9)
        if c.checkAutomatic {
            let layer = try Dense(weight: w, bias: [Float](repeating: 0, count: m))
            let plan = try CompiledNetwork(try Chain([layer]), batchSize: batch, policy: .automatic, threads: threads, variant: variant)
            let picked = plan.choices[0].kind == .sparse
            cell.automatic = picked ? "csr" : "dense"
            cell.automaticSlowdown = (picked ? csr : dense) / min(csr, dense)
        }
        return cell
    }

    /// The crossover of each shape, batch and thread count, in first-seen order.
    static func crossovers(_ cells: [Cell]) -> [Crossover] {
        var order: [Baseline.Key] = []
        var groups: [Baseline.Key: [Cell]] = [:]
        for c in cells {
            let key = Baseline.Key(shape: c.shape, batch: c.batch, threads: c.threads, sparsity: 0)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(c)
        }
        return order.map { key in
            let sorted = (groups[key] ?? []).sorted { $0.sparsity < $1.sparsity }
            var first = sorted.count  // the first cell of the winning run at the top of the grid
            while first > 0, sorted[first - 1].speedup > 1 { first -= 1 }
            var x = Crossover(shape: key.shape, batch: key.batch, threads: key.threads,
                              sparsity: first < sorted.count ? sorted[first].sparsity : nil)
            if first > 0, first < sorted.count {
                let lo = sorted[first - 1], hi = sorted[first]  // speedups lo ≤ 1 < hi
                x.slowerAt = lo.sparsity
                x.estimate = lo.sparsity + (1 - lo.speedup) / (hi.speedup - lo.speedup) * (hi.sparsity - lo.sparsity)
            }
            return x
        }
    }
}
