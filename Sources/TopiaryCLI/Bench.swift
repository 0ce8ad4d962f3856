import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary
import TopiaryBenchmarking

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark dense-masked against compressed (CSR) inference, whole networks, and training.",
        discussion: """
        By default, times one layer product per cell of the grid shape × batch × sparsity × threads, \
        dense-masked (OpenBLAS sgemm, or sgemv at batch 1, on weights with zeros) against CSR, in the \
        same run, and reports the speedup and the crossover sparsity where CSR starts to win (with an \
        interpolated estimate between that grid point and the one below it). Every \
        list is comma-separated; without lists the full grid runs (several minutes), --quick runs a \
        small one. Results are medians of runs after warm-up (interleaved with one thread; with more, \
        in blocks after pauses that let OpenBLAS's idle threads stop spinning).

        Examples:
          topiary bench --shape 4096x4096,300x784 --batch 1,128 --sparsity 0.9,0.95 --threads 1,2
          topiary bench --quick --check Benchmarks/baseline.json
          topiary bench --model pruned.safetensors
          topiary bench --training
        """
    )

    @Option(help: "Layer shapes ROWSxCOLUMNS, e.g. 4096x4096,300x784.")
    var shape: String?
    @Option(help: "Batch sizes, e.g. 1,128.")
    var batch: String?
    @Option(help: "Weight sparsities in [0, 1], e.g. 0.9,0.95.")
    var sparsity: String?
    @Option(help: "Thread counts, e.g. 1,2.")
    var threads: String?
    @Flag(help: "A small grid: about 2 s with --threads 1, about a minute with two threads.")
    var quick = false
    @Option(help: "Timed runs per cell (after warm-up).")
    var runs: Int?
    @Flag(help: "Also compile each cell's layer with the automatic policy and report whether it picked the faster path.")
    var automatic = false

    @Option(help: "Compare each ratio (CSR time / dense time) with a baseline file; exit 1 on a regression.")
    var check: String?
    @Option(help: "Allowed relative growth of a ratio over the baseline's (default: the baseline's own).")
    var tolerance: Double?
    @Option(name: .customLong("write-baseline"), help: "Write the measured ratios as a baseline file.")
    var writeBaseline: String?

    @Option(help: "Benchmark a saved model's compiled plan against its dense-masked form.")
    var model: String?
    @Flag(help: "Benchmark LeNet-300-100 with random masks at 0, 90, 95 and 98% sparsity.")
    var network = false
    @Flag(help: "Benchmark a training epoch and a forward pass against the sgemm limit.")
    var training = false
    @Option(help: "Layer sizes for --training, joined by '-'.")
    var arch: String = "784-300-100-10"

    @Flag(help: "Print one JSON object on standard output, and no progress.")
    var json = false

    func validate() throws {
        if let runs, !(1...1000).contains(runs) { throw ValidationError("--runs must be between 1 and 1000.") }
        if let tolerance, !(tolerance.isFinite && tolerance >= 0) { throw ValidationError("--tolerance must be at least 0.") }
        if [model != nil, network, training, check != nil].filter({ $0 }).count > 1 {
            throw ValidationError("Choose one of --model, --network, --training and --check.")
        }
        if automatic, model != nil || network || training || check != nil {
            throw ValidationError("--automatic applies to the grid only, not to --model, --network, --training or --check.")
        }
        _ = try grid()
        _ = try parseArchitecture(arch)
    }

    /// The grid from the options: --quick or the full grid, then each list given overrides its axis.
    func grid() throws -> SparseBenchmark.Configuration {
        var c = quick ? SparseBenchmark.Configuration.quick : .full
        if let shape { c.shapes = try parseList(shape, option: "--shape") { try? SparseBenchmark.Shape(parsing: $0) } }
        if let batch { c.batches = try parseList(batch, option: "--batch") { Int($0) } }
        if let sparsity { c.sparsities = try parseList(sparsity, option: "--sparsity") { Double($0) } }
        if let threads { c.threads = try parseList(threads, option: "--threads") { Int($0) } }
        if let runs { c.runs = runs }
        c.checkAutomatic = automatic
        do { try c.validate() } catch let error as TopiaryError { throw ValidationError(error.message) }
        return c
    }

    func run() throws {
        let blas = BLASReport.current()
        if !json { print(blas.summary) }
        var configuration = try grid()
        // --training without --threads measures 1 and 2 threads.
        let requested = training && threads == nil ? [1, 2] : configuration.threads
        if check == nil, let lowered = Bench.loweredThreads(requested) { printError(lowered) }
        let threadCounts = SparseBenchmark.usableThreads(requested)
        configuration.threads = threadCounts
        let pool = PoolCounts.Snapshot()
        if training {
            BLAS.threadCount = threadCounts.max() ?? 1
            return try runTraining(threads: threadCounts, blas: blas)
        }
        if let model {
            let loaded = try Model.load(from: model)
            return try runNetwork([SparseBenchmark.network(loaded.network, batches: [1, 128], threads: threadCounts)].flatMap { $0 },
                                  title: "\(model) (\(percent(loaded.network.sparsity)) of weights zero)", pool: pool, blas: blas)
        }
        if network {
            return try runNetwork(SparseBenchmark.lenet(threads: threadCounts), title: "LeNet-300-100, random masks", pool: pool, blas: blas)
        }
        if let check {
            let baseline = try SparseBenchmark.Baseline(contentsOfFile: check)
            // A lowered cell's key is not the baseline's: it is skipped, or meets the cell at that count.
            if let lowered = Bench.loweredThreads(baseline.configuration.threads) { printError(lowered) }
            let bar = ProgressBar(enabled: !json)
            var done = 0
            let total = baseline.cells.count
            let (results, regressions) = try SparseBenchmark.check(baseline: baseline, tolerance: tolerance) { _ in
                done += 1
                bar.update("check", done: min(done, total), total: total, elapsed: 0, detail: "")
            }
            bar.finish()
            let allowed = tolerance ?? baseline.tolerance
            if json {
                struct Report: Encodable {
                    var results: SparseBenchmark.Results
                    var tolerance: Double
                    var regressions: [String]
                    var blas: BLASReport
                }
                try printJSON(Report(results: results, tolerance: allowed, regressions: regressions.map(\.description), blas: blas))
            } else {
                print(results.table)
                if regressions.isEmpty {
                    print("no ratio regressed by more than \(percent(allowed)) against \(check) (\(results.results.count) cells)")
                } else {
                    print("regressions against \(check):")
                    for r in regressions { print("  \(r)") }
                }
            }
            if !regressions.isEmpty { throw ExitCode(1) }
            return
        }
        try runGrid(configuration, pool: pool, blas: blas)
    }

    /// A note for standard error when some of `counts` exceed the processors this process may
    /// run on (they are measured at that number, as the library runs them), else `nil`.
    static func loweredThreads(_ counts: [Int]) -> String? {
        let over = counts.filter { $0 > Threads.processors }
        guard !over.isEmpty else { return nil }
        let n = Threads.processors
        return "topiary: this process may run on \(n) processor\(n == 1 ? "" : "s"); "
            + "thread count\(over.count == 1 ? "" : "s") \(over.map(String.init).joined(separator: ",")) run\(over.count == 1 ? "s" : "") as \(n)"
    }

    private func runGrid(_ configuration: SparseBenchmark.Configuration, pool: PoolCounts.Snapshot, blas: BLASReport) throws {
        let total = configuration.shapes.count * configuration.batches.count * configuration.sparsities.count * configuration.threads.count
        let bar = ProgressBar(enabled: !json)
        var done = 0
        let results = try SparseBenchmark.run(configuration) { cell in
            done += 1
            bar.update("bench", done: done, total: total, elapsed: 0,
                       detail: "\(cell.shape) B=\(cell.batch) T=\(cell.threads) s=\(cell.sparsity): \(String(format: "%.2f", cell.speedup))×")
        }
        bar.finish()
        if let writeBaseline {
            let text = try SparseBenchmark.Baseline(results, tolerance: tolerance ?? 1.0).jsonString()
            do {
                try (text + "\n").write(toFile: writeBaseline, atomically: true, encoding: .utf8)
            } catch {
                throw TopiaryError(.writeFailed, "Cannot write the baseline \(writeBaseline): \(error.localizedDescription)")
            }
        }
        let counts = PoolCounts(since: pool)
        if json {
            // The issue's keys, plus the pool's counters over the run and OpenBLAS's build and core.
            struct Report: Encodable {
                var results: SparseBenchmark.Results
                var pool: PoolCounts
                var blas: BLASReport
                enum CodingKeys: String, CodingKey { case pool, blas }
                func encode(to encoder: Encoder) throws {
                    try results.encode(to: encoder)
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(pool, forKey: .pool)
                    try c.encode(blas, forKey: .blas)
                }
            }
            try printJSON(Report(results: results, pool: counts, blas: blas))
        } else {
            print("kernel variant \(results.variant)")
            print(results.table)
            if configuration.threads.contains(where: { $0 > 1 }) { print(counts.summary) }
            if let writeBaseline { print("wrote \(writeBaseline)") }
        }
    }

    private func runNetwork(_ results: [SparseBenchmark.NetworkResult], title: String, pool: PoolCounts.Snapshot,
                            blas: BLASReport) throws {
        let counts = PoolCounts(since: pool)
        if json {
            struct Report: Encodable {
                var title: String; var results: [SparseBenchmark.NetworkResult]; var pool: PoolCounts; var blas: BLASReport
            }
            try printJSON(Report(title: title, results: results, pool: counts, blas: blas))
        } else {
            print(title)
            print(SparseBenchmark.table(results))
            if results.contains(where: { $0.threads > 1 }) { print(counts.summary) }
        }
    }

    private func runTraining(threads: [Int], blas: BLASReport) throws {
        var results: [TrainingBenchmark.Result] = []
        for t in threads {
            BLAS.threadCount = t
            results.append(try TrainingBenchmark.run(sizes: try parseArchitecture(arch), runs: runs ?? 5))
        }
        if json {
            struct Report: Encodable { var results: [TrainingBenchmark.Result]; var blas: BLASReport }
            try printJSON(Report(results: results, blas: blas))
            return
        }
        for r in results {
            print("training \(arch), \(r.examples) images, batch \(r.batchSize), \(r.threads) thread(s), median of \(r.runs) runs")
            print(String(format: "  epoch          %8.3f s  %6.1f GFLOP/s", r.epochSeconds, r.epochGflops))
            print(String(format: "  sgemm limit    %8.3f s  %6.1f GFLOP/s  (the same products as bare sgemm calls)", r.sgemmSeconds, r.sgemmGflops))
            print(String(format: "  efficiency     %8.1f %%  of the sgemm limit", 100 * r.efficiency))
            print(String(format: "  masked epoch   %8.3f s  %6.2f× the dense epoch (90%% of weights masked)", r.maskedEpochSeconds, r.maskedEpochRatio))
            print(String(format: "  forward pass   %8.3f s  %6.1f GFLOP/s  (%d images, batch 1000)", r.forwardSeconds, r.forwardGflops, r.examples))
            print(String(format: "  peak sgemm     %17.1f GFLOP/s  (2048³)", r.peakSgemmGflops))
        }
    }
}

/// The thread pool's counters over one `topiary bench` run, which tell whether another process
/// took a core meanwhile (`--json`: `"pool"`).
struct PoolCounts: Encodable {
    /// The counters when the run started.
    struct Snapshot {
        let statistics = SparseKernels.poolStatistics
    }

    /// Products handed to the pool's workers.
    var jobs: Int
    /// Small products run on the calling thread because that was faster for their kind.
    var aloneJobs: Int
    /// Workers found delayed (see ``SparseKernels/PoolStatistics/delays``).
    var delays: Int
    /// Back-offs to one thread: delays over the pool's budget.
    var backOffs: Int

    init(since start: Snapshot) {
        let now = SparseKernels.poolStatistics, then = start.statistics
        jobs = now.jobs - then.jobs
        aloneJobs = now.aloneJobs - then.aloneJobs
        delays = now.delays - then.delays
        backOffs = now.stalls - then.stalls
    }

    enum CodingKeys: String, CodingKey {
        case jobs, aloneJobs = "alone_jobs", delays, backOffs = "back_offs"
    }

    /// One line for the text output.
    var summary: String {
        "thread pool: \(jobs) jobs, \(aloneJobs) small products run on one thread (faster so for their kind), "
            + "\(delays) delayed workers, \(backOffs) back-offs to one thread (delays over the pool's budget: another process wants the cores)"
    }
}
