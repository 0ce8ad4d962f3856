import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune a trained model: saliency × scope × schedule × fine-tuning, or whole neurons.",
        discussion: """
        Examples:
          The reference protocol (20% of the remaining weights per step, clipped at 90/95/98%, 1 epoch \
        per step, +2 epochs at each milestone):
            topiary prune --model dense.safetensors --saliency magnitude --scope global --schedule geometric \
        --milestones 0.9,0.95,0.98 --finetune-epochs 1 --final-epochs 2 --lr 0.01 --output pruned.safetensors
          One-shot, then 3 epochs:  topiary prune --model dense.safetensors --schedule oneshot --target 0.9 --finetune-epochs 0 --final-epochs 3
          AGP inside training, pruning every 50 batches over 20 epochs:  topiary prune --model dense.safetensors --schedule agp --prune-every 50 --finetune-epochs 20 --final-epochs 6 --target 0.98
          Lottery ticket:  topiary prune --model dense.safetensors --finetune rewind:0 ...
          Rewind to epoch 1 (after topiary train --save-epochs 1 --output dense.safetensors):  topiary prune --model dense.safetensors --finetune rewind:1 ...
          Structured:  topiary prune --model dense.safetensors --structured neurons --criterion l1 --target 0.5 --schedule oneshot --finetune-epochs 0 --final-epochs 3
          Structured, half of all hidden neurons wherever they are:  topiary prune --model dense.safetensors --structured neurons --scope global --criterion l2 --target 0.5 ...
        """
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var common: CommonOptions

    @Option(help: "The trained model to prune (safetensors).")
    var model: String

    @OptionGroup(title: "What is pruned") var structure: StructureOptions
    @OptionGroup(title: "Saliency") var saliency: SaliencyOptions
    @OptionGroup(title: "Scope") var scope: ScopeOptions
    @OptionGroup(title: "Schedule") var schedule: ScheduleOptions
    @OptionGroup(title: "Fine-tuning") var fineTune: FineTuningOptions
    @OptionGroup(title: "Fine-tuning optimizer") var optimizer: OptimizerOptions<FineTuningDefaults>

    @Option(name: .shortAndLong, help: "Where to save the pruned model.")
    var output: String = "pruned.safetensors"

    @Option(help: ArgumentHelp(stringLiteral: EncodingOption.help + " For --output and --milestone-output."))
    var encoding: EncodingOption = .automatic

    @Option(name: .customLong("milestone-output"), help: "Also save the model at each milestone; {sparsity} in the path becomes the percentage, e.g. pruned-{sparsity}.safetensors.")
    var milestoneOutput: String?

    @Option(help: "Checkpoint folder: the network and a JSON state after every step.")
    var checkpoint: String?

    @Flag(help: "Resume from --checkpoint if it holds a checkpoint of this run.")
    var resume = false

    @Flag(name: .customLong("record-paths"), help: "Record --model in the saved models as given; by default only its file name, so that model files carry no folders of this machine.")
    var recordPaths = false

    func validate() throws {
        if structure.neurons, scope.scope == .sensitivity { throw ValidationError("--structured neurons takes --scope layerwise (the default) or global.") }
        if structure.neurons, schedule.pruneEvery != nil { throw ValidationError("--prune-every prunes single weights; it cannot be combined with --structured.") }
        if scope.budget != nil, schedule.target != nil {
            throw ValidationError("--budget sets the final sparsity (the one the per-layer targets imply); do not combine it with --target.")
        }
        if saliency.saliency == .obs, structure.pruneBiases {
            throw ValidationError("--saliency obs prunes and reconstructs weights only; it cannot be combined with --prune-biases.")
        }
        if resume, checkpoint == nil { throw ValidationError("--resume needs --checkpoint.") }
    }

    func run() throws {
        let out = try execute(ConsoleOutput(json: common.json))
        if common.json { return try printJSON(out) }
        if out.milestones.count > 1 {
            print("milestones: " + out.milestones.map { "\(percent($0.sparsity)) → test \(percent($0.test_accuracy))" }.joined(separator: ", "))
        }
        print("final: test accuracy \(percent(out.final.testAccuracy)), sparsity\(structure.pruneBiases ? " (weights and biases)" : "") \(percent(out.final.sparsity)), \(out.final.nonzeroParameters)/\(out.final.parameters) non-zero parameters, \(out.total_epochs) epochs in \(String(format: "%.1f", out.seconds)) s; saved \(output)")
    }

    /// Prunes and saves the model(s), telling `out` what happens; the `--json` report.
    /// `curves`: a sensitivity analysis of the model already made with this command's saliency
    /// and sparsities (`topiary run` shares one between methods), else it is run here.
    func execute(_ out: CommandOutput, sensitivity curvesGiven: SensitivityCurves? = nil) throws -> Report {
        common.apply()
        let clock = ContinuousClock()
        let start = clock.now
        let loaded = try Model.load(from: model)
        let dataset = try data.load(for: loaded, path: model)
        let original = loaded.network
        // An empty validation split (--validation 0) has no accuracy: null in JSON, "n/a" in text.
        let dense = (test: try original.evaluate(dataset.test), val: dataset.validation.isEmpty ? nil : try original.evaluate(dataset.validation))
        let say = out.say
        say("\(model): \(architecture(original.sizes)), test accuracy \(percent(dense.test.accuracy)), validation \(percentOrNotApplicable(dense.val?.accuracy))")

        var target = schedule.finalTarget(neurons: structure.neurons)
        var layerTargets: [Double]?
        let method: IterativePruner.Method
        if structure.neurons {
            var neurons = NeuronPruner(criterion: structure.criterion(train: dataset.train), scope: scope.neuronScope,
                                       repair: structure.repair == .leastSquares ? dataset.train.prefix(saliency.calibrationSamples) : nil)
            neurons.repairDamping = saliency.damping
            method = .neurons(neurons)
        } else {
            let sal = saliency.saliency(seed: optimizer.seed, train: dataset.train, batchSize: optimizer.batchSize)
            var weightScope = try scope.weightScope()
            if scope.scope == .sensitivity {
                let curves = try curvesGiven ?? SensitivityAnalysis(sparsities: try scope.sparsities(), saliency: sal)
                    .run(original, validation: dataset.validation) { out.progress("sensitivity", done: $0, total: $1, elapsed: 0, detail: "") }
                out.endProgress()
                let sizes = original.layers.map { $0.weight.count + (structure.pruneBiases ? $0.bias.count : 0) }
                let s = try curves.scope(budget: scope.budget, target: target, layerSizes: sizes,
                                         protectedLayers: weightScope.protectedLayers, sparsityCaps: weightScope.sparsityCaps)
                let list = s.layerTargets.map { percent($0) }.joined(separator: ", ")
                if let budget = scope.budget {
                    say("sensitivity: per-layer targets within a \(percent(budget)) drop: \(list)")
                    say("sensitivity: final target \(percent(s.target)), the sparsity the per-layer targets imply")
                } else {
                    say("sensitivity: per-layer sparsities at \(percent(target)): \(list)")
                }
                (weightScope, layerTargets, target) = (s.scope, s.layerTargets, s.target)
            }
            method = .weights(Pruner(saliency: sal, scope: weightScope, includeBiases: structure.pruneBiases))
        }

        let plan = try schedule.plan(final: target, epochs: fineTune.finetuneEpochs,
                                     batchesPerEpoch: (dataset.train.count + optimizer.batchSize - 1) / optimizer.batchSize)
        let (policy, rewindFrom) = try fineTune.policy(model: loaded, path: model, seed: optimizer.seed)
        if let rewindFrom, case .rewind(let k) = fineTune.finetune { say("rewind:\(k): surviving weights go back to \(rewindFrom) after every step") }
        let pruner = IterativePruner(network: original, dataset: dataset, method: method, plan: plan, fineTuning: fineTune.fineTuning(policy: policy),
                                     optimizer: optimizer.settings.makeOptimizer(), batchSize: optimizer.batchSize, seed: optimizer.seed,
                                     checkpointDirectory: checkpoint)
        let (stepCount, totalEpochs) = (try pruner.plannedSteps(), try pruner.plannedEpochs())
        pruner.fineTuning.schedule = optimizer.learningRateSchedule.schedule(
            epochs: fineTune.lrRewind ? fineTune.finetuneEpochs + fineTune.finalEpochs : totalEpochs)

        let source = recordPaths ? model : URL(fileURLWithPath: model).lastPathComponent
        func save(_ network: Chain, steps: Int, to path: String) throws {
            try Model(network: network, normalization: loaded.normalization, recipe: loaded.recipe,
                      provenance: PruningProvenance(method: pruner.fingerprint, steps: steps, source: source))
                .save(to: path, encoding: encoding.layerEncoding)
        }
        var milestonePaths: [Int: String] = [:]
        let report = try pruner.run(resume: resume, progress: { p in
            out.progress("step \(p.step)/\(p.stepCount) epoch \(p.epoch)/\(p.epochCount)", done: p.training.batchesDone,
                       total: p.training.batchCount, elapsed: p.training.elapsed, detail: String(format: "loss %.4f", p.training.runningLoss),
                         fraction: (Double(p.step - 1) + (Double(p.epoch - 1) + Double(p.training.batchesDone) / Double(max(1, p.training.batchCount)))
                                    / Double(max(1, p.epochCount))) / Double(max(1, p.stepCount)))
        }, onStep: { r, net in
            out.endProgress()
            say(String(format: "step %2d/%d  target %@  sparsity %@  layers %@  val %@  test %@  %d epoch(s)  prune %.2f ms  %.2f s%@",
                       r.step, stepCount, percent(r.targetSparsity), percent(r.sparsity),
                       structure.neurons ? architecture(r.sizes) : r.layerSparsity.map { percent($0) }.joined(separator: "/"),
                       percentOrNotApplicable(r.valAccuracy), percent(r.testAccuracy), r.epochs, r.pruneSeconds * 1000, r.seconds,
                       r.milestone ? "  ◆ milestone" : ""))
            if r.milestone, let pattern = milestoneOutput {
                let path = pattern.replacingOccurrences(of: "{sparsity}", with: String(format: "%.1f", 100 * r.targetSparsity))
                try save(net, steps: r.step, to: path)
                milestonePaths[r.step] = path
            }
        })
        let pruned = pruner.network
        try save(pruned, steps: report.steps.count, to: output)

        var structured: Report.Structured?
        if structure.neurons {
            let (x, sample) = (dataset.test.images, dataset.test.prefix(1000).images)
            let before = try forwardSeconds(original, input: x, batch: 1000, repeats: 10), after = try forwardSeconds(pruned, input: x, batch: 1000, repeats: 10)
            let before1 = try forwardSeconds(original, input: sample, batch: 1, repeats: 5), after1 = try forwardSeconds(pruned, input: sample, batch: 1, repeats: 5)
            structured = .init(sizes_before: original.sizes, sizes_after: pruned.sizes, forward_seconds_before: before,
                               forward_seconds_after: after, speedup: before / after, batch1_speedup: before1 / after1)
            say(String(format: "structured: %@ → %@, forward pass over the test set %.2f ms → %.2f ms (×%.2f), batch 1 ×%.2f",
                       architecture(original.sizes), architecture(pruned.sizes), before * 1000, after * 1000, before / after, before1 / after1))
        }
        // Milestones from the records (a resumed run includes the earlier ones).
        let milestones = report.steps.filter(\.milestone).map {
            Report.Milestone(step: $0.step, target_sparsity: $0.targetSparsity, sparsity: $0.sparsity, val_accuracy: $0.valAccuracy,
                             test_accuracy: $0.testAccuracy, model: milestonePaths[$0.step])
        }
        let pruneTimes = report.steps.map(\.pruneSeconds).filter { $0 > 0 }
        return Report(steps: report.steps, final: report.final, milestones: milestones,
                         dense_test_accuracy: dense.test.accuracy, dense_val_accuracy: dense.val?.accuracy,
                         method: pruner.fingerprint, total_epochs: totalEpochs, seconds: (clock.now - start).seconds,
                         mean_prune_seconds: pruneTimes.isEmpty ? 0 : pruneTimes.reduce(0, +) / Double(pruneTimes.count),
                         output: output, structured: structured, layer_targets: layerTargets, rewind_from: rewindFrom,
                         sparsity_counts: structure.pruneBiases ? "weights and biases" : "weights")
    }

    /// The `--json` output.
    struct Report: Encodable {
        struct Milestone: Encodable {
            var step: Int
            var target_sparsity: Double
            var sparsity: Double
            @NullWhenNil var val_accuracy: Double?
            var test_accuracy: Double
            var model: String?
        }

        struct Structured: Encodable {
            var sizes_before: [Int]
            var sizes_after: [Int]
            var forward_seconds_before: Double
            var forward_seconds_after: Double
            var speedup: Double
            var batch1_speedup: Double
        }

        var steps: [PruningStepRecord]
        var final: PruningReport.Final
        var milestones: [Milestone]
        var dense_test_accuracy: Double
        @NullWhenNil var dense_val_accuracy: Double?
        var method: String
        var total_epochs: Int
        var seconds: Double
        var mean_prune_seconds: Double
        var output: String
        var structured: Structured?
        var layer_targets: [Double]?
        /// Where the weights of --finetune rewind:K came from.
        var rewind_from: String?
        /// What `sparsity` counts: "weights", or "weights and biases" with --prune-biases.
        var sparsity_counts: String
    }
}
