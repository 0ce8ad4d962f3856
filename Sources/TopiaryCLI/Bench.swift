import ArgumentParser
import Foundation
import Topiary

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark training and inference on this machine.",
        discussion: """
        --training times one training epoch of LeNet-300-100 (60,000 synthetic images, batch 128) \
        against the sgemm limit: the same matrix products as bare OpenBLAS calls, measured in the \
        same run. Results are medians over --runs runs after one warm-up.
        """
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Benchmark a training epoch and a forward pass against the sgemm limit.")
    var training = false

    @Option(help: "Layer sizes for --training, joined by '-'.")
    var arch: String = "784-300-100-10"

    @Option(help: "Timed runs (after one warm-up).")
    var runs: Int = 5

    func validate() throws {
        _ = try parseArchitecture(arch)
        guard (1...1000).contains(runs) else { throw ValidationError("--runs must be between 1 and 1000.") }
        guard training else { throw ValidationError("Choose what to benchmark: --training.") }
    }

    func run() throws {
        common.apply()
        let r = TrainingBenchmark.run(sizes: try parseArchitecture(arch), runs: runs)
        if common.json {
            try printJSON(r)
            return
        }
        print("training \(arch), \(r.examples) images, batch \(r.batchSize), \(r.threads) thread(s), median of \(r.runs) runs")
        print(String(format: "  epoch          %8.3f s  %6.1f GFLOP/s", r.epochSeconds, r.epochGflops))
        print(String(format: "  sgemm limit    %8.3f s  %6.1f GFLOP/s  (the same products as bare sgemm calls)", r.sgemmSeconds, r.sgemmGflops))
        print(String(format: "  efficiency     %8.1f %%  of the sgemm limit", 100 * r.efficiency))
        print(String(format: "  masked epoch   %8.3f s  %6.2f× the dense epoch (90%% of weights masked)", r.maskedEpochSeconds, r.maskedEpochRatio))
        print(String(format: "  forward pass   %8.3f s  %6.1f GFLOP/s  (%d images, batch 1000)", r.forwardSeconds, r.forwardGflops, r.examples))
        print(String(format: "  peak sgemm     %17.1f GFLOP/s  (2048³)", r.peakSgemmGflops))
    }
}
