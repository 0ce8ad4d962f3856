import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

struct Sensitivity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure how much each layer, pruned alone, hurts validation accuracy; derive per-layer targets.",
        discussion: """
        Each prunable layer alone is pruned (by --saliency) to each of --sparsities and evaluated on the \
        validation split (never the test split). With --budget, prints the largest sparsity per layer \
        whose accuracy drop stays within the budget; with --target, the per-layer sparsities that reach \
        that overall sparsity with the smallest predicted drop.
        Example:
          topiary sensitivity --model dense.safetensors --sparsities 0.5,0.8,0.9,0.95,0.98 --budget 0.005
        """
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var common: CommonOptions

    @Option(help: "The trained model (safetensors).")
    var model: String

    @Option(help: "Sparsities to try per layer, comma-separated (default 0.1…0.9, 0.95, 0.98, 0.99).")
    var sparsities: String?

    @Option(help: "Accuracy-drop budget (a fraction: 0.005 = half a point) for per-layer targets.")
    var budget: Double?

    @Option(help: "An overall sparsity to allocate across layers from the curves.")
    var target: Double?

    @OptionGroup(title: "Saliency") var saliency: SaliencyOptions

    @Option(help: "The seed of the random saliency and of the Taylor saliency's batches, as in prune.")
    var seed: UInt64 = 0

    @Option(name: .customLong("finetune-batches"), help: "Batches of fine-tuning (SGD 0.9 at --lr) after pruning each point; 0 for none.")
    var finetuneBatches: Int = 0

    @Option(help: "Learning rate of that fine-tuning.")
    var lr: Float = 0.01

    @Option(help: "Also write the curves as CSV to this file.")
    var csv: String?

    func validate() throws {
        if let sparsities { _ = try parseFractions(sparsities, option: "--sparsities") }
        if let budget { guard budget.isFinite, budget >= 0 else { throw ValidationError("--budget must be at least 0.") } }
        if let target { guard target.isFinite, (0...1).contains(target) else { throw ValidationError("--target must be in [0, 1].") } }
        guard (0...100_000).contains(finetuneBatches) else { throw ValidationError("--finetune-batches must be between 0 and 100000.") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number.") }
    }

    struct Report: Encodable {
        var curves: SensitivityCurves
        var budget: Double?
        var budget_targets: [Double]?
        var target: Double?
        var allocation: [Double]?
        var seconds: Double
    }

    func run() throws {
        let report = try execute(ConsoleOutput(json: common.json))
        if common.json { return try printJSON(report) }
        let curves = report.curves
        print("validation accuracy with one layer pruned (unpruned: \(percent(curves.baselineAccuracy)))")
        let header = ["sparsity"] + curves.layers.map { "layer \($0.layer) (\($0.weights))" }
        print(header.map { $0.padding(toLength: 18, withPad: " ", startingAt: 0) }.joined())
        for (i, s) in (curves.layers.first?.points ?? []).enumerated() {
            let row = [percent(s.sparsity)] + curves.layers.map { percent($0.points[i].accuracy) }
            print(row.map { $0.padding(toLength: 18, withPad: " ", startingAt: 0) }.joined())
        }
        if let t = report.budget_targets, let budget {
            print("per-layer targets within a \(percent(budget)) drop: " + t.map { percent($0) }.joined(separator: ", "))
        }
        if let a = report.allocation, let target {
            print("per-layer sparsities for \(percent(target)) overall: " + a.map { percent($0) }.joined(separator: ", "))
        }
    }

    /// Runs the analysis (and writes --csv), showing progress on `out`; the `--json` report.
    func execute(_ out: CommandOutput) throws -> Report {
        common.apply()
        let clock = ContinuousClock()
        let start = clock.now
        let loaded = try Model.load(from: model)
        let dataset = try data.load(for: loaded, path: model)
        let list = try sparsities.map { try parseFractions($0, option: "--sparsities") } ?? SensitivityAnalysis.defaultSparsities
        var analysis = SensitivityAnalysis(sparsities: list, fineTuneBatches: finetuneBatches, fineTuneLearningRate: lr)
        analysis.saliency = saliency.saliency(seed: seed, train: dataset.train, batchSize: analysis.batchSize)
        let curves = try analysis
            .run(loaded.network, validation: dataset.validation, train: dataset.train) { done, total in
                out.progress("sensitivity", done: done, total: total, elapsed: (clock.now - start).seconds, detail: "")
            }
        out.endProgress()
        if let csv { try curves.csv.write(toFile: csv, atomically: true, encoding: .utf8) }
        return Report(curves: curves, budget: budget, budget_targets: budget.map { curves.targets(budget: $0) },
                      target: target, allocation: target.map { curves.allocation(overall: $0) },
                      seconds: (clock.now - start).seconds)
    }
}
