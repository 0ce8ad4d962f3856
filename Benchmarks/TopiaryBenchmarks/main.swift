// Topiary's benchmark suites, run together: dense-masked versus CSR per layer shape, whole-network
// inference of LeNet-300-100, a training epoch against the sgemm limit, and one pruning step. A client of
// TopiaryBenchmarking only; `topiary bench` runs each suite alone with more options (lists, --check, --model).
//
//   swift run -c release TopiaryBenchmarks            # the full grid of issue 4 (several minutes)
//   swift run -c release TopiaryBenchmarks --quick    # a small grid (its layer products alone: about 65 s)
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary
import TopiaryBenchmarking

let quick = CommandLine.arguments.contains("--quick")
if let unknown = CommandLine.arguments.dropFirst().first(where: { $0 != "--quick" }) {
    FileHandle.standardError.write(Data("usage: TopiaryBenchmarks [--quick] (unknown argument \(unknown))\n".utf8))
    exit(2)
}

print("== layer products: dense-masked vs CSR (kernel variant \(SparseKernels.bestVariant)) ==")
let grid = try SparseBenchmark.run(quick ? .quick : .full)
print(grid.table)

print("\n== LeNet-300-100 inference, random masks ==")
print(SparseBenchmark.table(try SparseBenchmark.lenet()))

print("\n== training epoch against the sgemm limit ==")
for threads in SparseBenchmark.usableThreads([1, 2]) {
    BLAS.threadCount = threads
    let r = try TrainingBenchmark.run(examples: quick ? 12_000 : 60_000, runs: quick ? 3 : 5)
    print(String(format: "threads %d: epoch %.3f s (%.1f GFLOP/s), sgemm limit %.3f s (%.1f GFLOP/s), efficiency %.1f%%, masked epoch %.2f×, forward %.3f s (%.1f GFLOP/s)",
                 threads, r.epochSeconds, r.epochGflops, r.sgemmSeconds, r.sgemmGflops, 100 * r.efficiency,
                 r.maskedEpochRatio, r.forwardSeconds, r.forwardGflops))
}

print("\n== one global magnitude pruning step, LeNet-300-100 (266,200 weights) to 90% ==")
do {
    let seconds = try PruningBenchmark.globalMagnitudeStep()
    print(String(format: "median %.3f ms (saliency and exact selection, 21 runs after a warm-up)", seconds * 1e3))
} catch {
    print("pruning benchmark failed: \(error)")
}
