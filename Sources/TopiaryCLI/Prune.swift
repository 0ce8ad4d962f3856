import ArgumentParser
import Foundation
@_spi(Benchmarking) import Topiary   // Duration.seconds

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

    // MARK: What and how
    @Option(help: "Saliency of a weight: magnitude, random (a control) or taylor (|w·∂L/∂w| over --taylor-batches batches).")
    var saliency: String = "magnitude"

    @Option(name: .customLong("taylor-batches"), help: "Batches of training data the Taylor saliency averages over.")
    var taylorBatches: Int = 10

    @Option(help: "Scope: global (one threshold), layerwise (same fraction per layer) or sensitivity (per-layer targets from a sensitivity analysis on the validation split). Default: global. With --structured neurons: layerwise (the default: the same fraction of each hidden layer) or global (all hidden neurons ranked together by scores comparable across layers: mean |w| for l1, L2 norm / √fan-in for l2, mean |activation|; every layer keeps at least one neuron).")
    var scope: String?

    /// The scope of weight pruning (global by default).
    var weightScope: String { scope ?? "global" }

    @Option(help: "Prunable layers (from 0) never pruned, comma-separated.")
    var protect: String?

    @Option(help: "Sparsity caps, comma-separated LAYER:MAX, e.g. 2:0.5 keeps the output layer at most 50% sparse.")
    var cap: String?

    @Option(help: "With --scope sensitivity: per-layer targets are the largest sparsities whose validation accuracy drop stays within this budget (a fraction, 0.005 = half a point), and the final target is the overall sparsity they imply (so not with --target); without it, per-layer sparsities reaching each step's target with the smallest predicted drop.")
    var budget: Double?

    @Option(name: .customLong("sensitivity-sparsities"), help: "Sparsities the sensitivity analysis tries, comma-separated (default 0.1…0.9, 0.95, 0.98, 0.99).")
    var sensitivitySparsities: String?

    @Flag(name: .customLong("prune-biases"), help: "Biases take part in the ranking and selection like weights (|b| for magnitude, |b·∂L/∂b| for taylor); the target and the reported sparsity then count weights and biases together. Biases are not pruned by default.")
    var pruneBiases = false

    @Option(help: "Structured pruning: 'neurons' removes whole hidden neurons (targets are fractions of hidden neurons).")
    var structured: String?

    @Option(help: "Neuron score for --structured: l1, l2 (of incoming weights) or activation (mean |activation| on --activation-samples training images).")
    var criterion: String = "l1"

    @Option(name: .customLong("activation-samples"), help: "Training images for the activation criterion.")
    var activationSamples: Int = 2000

    // MARK: Schedule
    @Option(help: "oneshot, geometric (--step-fraction of the remaining weights per step), agp (Zhu & Gupta, --steps steps, or inside training with --prune-every) or list:0.5,0.8,0.9.")
    var schedule: String = "geometric"

    @Option(help: "The final sparsity (fraction of weights, or of hidden neurons with --structured). Default: the last milestone, else 0.9 (0.5 with --structured); with --budget, the sparsity the per-layer targets imply.")
    var target: Double?

    @Option(help: "Milestones of a geometric or list schedule, comma-separated: each is landed on exactly, fine-tuned --final-epochs more, and reported. The last is the target.")
    var milestones: String?

    @Option(help: "Steps of the agp schedule.")
    var steps: Int = 10

    @Option(name: .customLong("step-fraction"), help: "Fraction of the remaining weights removed per geometric step, 0.001 to 1.")
    var stepFraction: Double = 0.2

    @Option(help: "Exponent of the agp schedule.")
    var exponent: Double = 3

    @Option(name: .customLong("prune-every"), help: "With agp: prune inside fine-tuning every N batches, over the --finetune-epochs epochs.")
    var pruneEvery: Int?

    // MARK: Fine-tuning
    @Option(name: .customLong("finetune-epochs"), help: "Fine-tuning epochs after each step (with --prune-every: the epochs pruning is spread over).")
    var finetuneEpochs: Int = 1

    @Option(name: .customLong("final-epochs"), help: "Extra epochs after each milestone and after the last step.")
    var finalEpochs: Int = 2

    @Option(help: "continue, rewind:K (surviving weights back to those at training epoch K; K = 0 is the lottery-ticket reset) or reinit.")
    var finetune: String = "continue"

    @Option(name: .customLong("rewind-weights"), help: "A model file with the weights to rewind to. Default: <model stem>.epoch-K.safetensors next to --model when it exists (topiary train --save-epochs K writes it), else for rewind:0 the initialisation, rebuilt from the seed recorded in --model.")
    var rewindWeights: String?

    @Flag(name: .customLong("lr-rewind"), help: "Restart the learning-rate schedule at every step (Renda et al. 2020).")
    var lrRewind = false

    @Flag(name: .customLong("keep-optimizer-state"), help: "Carry momentum across steps instead of clearing it at every step (a resumed run then restarts it at the resumed step).")
    var keepOptimizerState = false

    @Option(help: "Fine-tuning optimizer: sgd, nesterov, adam or adamw.")
    var optimizer: String = "sgd"

    @Option(help: "Fine-tuning learning rate.")
    var lr: Float = 0.01

    @Option(help: "Momentum for sgd and nesterov.")
    var momentum: Float = 0.9

    @Option(name: .customLong("weight-decay"), help: "Weight decay.")
    var weightDecay: Float = 0

    @Option(name: .customLong("batch-size"), help: "Examples per fine-tuning batch.")
    var batchSize: Int = 128

    @Option(name: .customLong("lr-schedule"), help: "Fine-tuning learning-rate schedule: constant, cosine (over all fine-tuning epochs, or over each step's with --lr-rewind) or step:EVERY:GAMMA.")
    var lrSchedule: String = "constant"

    @Option(help: "The seed for shuffling, random saliency and reinitialisation.")
    var seed: UInt64 = 0

    // MARK: Output
    @Option(name: .shortAndLong, help: "Where to save the pruned model.")
    var output: String = "pruned.safetensors"

    @Option(name: .customLong("milestone-output"), help: "Also save the model at each milestone; {sparsity} in the path becomes the percentage, e.g. pruned-{sparsity}.safetensors.")
    var milestoneOutput: String?

    @Option(help: "Checkpoint folder: the network and a JSON state after every step.")
    var checkpoint: String?

    @Flag(help: "Resume from --checkpoint if it holds a checkpoint of this run.")
    var resume = false

    func validate() throws {
        guard ["magnitude", "random", "taylor"].contains(saliency) else {
            throw ValidationError("Unknown saliency '\(saliency)': use magnitude, random or taylor.")
        }
        if let scope {
            guard ["global", "layerwise", "sensitivity"].contains(scope) else {
                throw ValidationError("Unknown scope '\(scope)': use global, layerwise or sensitivity.")
            }
            if structured != nil, scope == "sensitivity" {
                throw ValidationError("--structured neurons takes --scope layerwise (the default) or global.")
            }
        }
        if let structured, structured != "neurons" { throw ValidationError("--structured accepts only 'neurons'.") }
        guard ["l1", "l2", "activation"].contains(criterion) else { throw ValidationError("Unknown criterion '\(criterion)': use l1, l2 or activation.") }
        if let target { guard target.isFinite, (0...1).contains(target) else { throw ValidationError("--target must be in [0, 1].") } }
        guard stepFraction.isFinite, stepFraction >= 0.001, stepFraction <= 1 else { throw ValidationError("--step-fraction must be in [0.001, 1].") }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps must be between 1 and 100000.") }
        guard exponent.isFinite, exponent > 0 else { throw ValidationError("--exponent must be positive.") }
        if let pruneEvery { guard pruneEvery >= 1 else { throw ValidationError("--prune-every must be at least 1.") } }
        guard (0...10_000).contains(finetuneEpochs), (0...10_000).contains(finalEpochs) else {
            throw ValidationError("--finetune-epochs and --final-epochs must be between 0 and 10000.")
        }
        guard (1...1_000).contains(taylorBatches) else { throw ValidationError("--taylor-batches must be between 1 and 1000.") }
        guard activationSamples >= 1 else { throw ValidationError("--activation-samples must be at least 1.") }
        try validateOptimizerOptions(optimizer: optimizer, lr: lr, momentum: momentum, weightDecay: weightDecay, batchSize: batchSize)
        if let budget { guard budget.isFinite, budget >= 0 else { throw ValidationError("--budget must be at least 0.") } }
        if budget != nil, target != nil {
            throw ValidationError("--budget sets the final sparsity (the one the per-layer targets imply); do not combine it with --target.")
        }
        if resume, checkpoint == nil { throw ValidationError("--resume needs --checkpoint.") }
        _ = try parsedPolicyKind()
        _ = try parsedSchedule()
        _ = try parsedCaps()
        _ = try parsedProtect()
        _ = try parsedLRSchedule(epochs: 1)
        if let s = sensitivitySparsities { _ = try parseFractions(s, option: "--sensitivity-sparsities") }
        if structured != nil, pruneEvery != nil { throw ValidationError("--prune-every prunes single weights; it cannot be combined with --structured.") }
        if structured != nil, pruneBiases { throw ValidationError("--prune-biases prunes single biases; it cannot be combined with --structured (removing a neuron removes its bias).") }
    }

    // MARK: Parsing

    enum PolicyKind { case `continue`, rewind(Int), reinit }

    func parsedPolicyKind() throws -> PolicyKind {
        if finetune == "continue" { return .continue }
        if finetune == "reinit" { return .reinit }
        if finetune.hasPrefix("rewind:"), let k = Int(finetune.dropFirst(7)), k >= 0 { return .rewind(k) }
        throw ValidationError("Unknown --finetune '\(finetune)': use continue, rewind:K (K ≥ 0) or reinit.")
    }

    func parsedMilestones() throws -> [Double] {
        guard let milestones else { return [] }
        return try parseFractions(milestones, option: "--milestones")
    }

    /// The final target: --target, else `implied` (with --budget, the sparsity the per-layer
    /// targets imply), else the last milestone, else 0.9.
    func finalTarget(implied: Double? = nil) throws -> Double {
        if let target { return target }
        if let implied { return implied }
        if let last = try parsedMilestones().max() { return last }
        if schedule.hasPrefix("list:"), let last = try parseFractions(String(schedule.dropFirst(5)), option: "--schedule list").last { return last }
        return structured == nil ? 0.9 : 0.5
    }

    func parsedSchedule(implied: Double? = nil) throws -> PruningSchedule {
        let final = try finalTarget(implied: implied)
        let ms = try parsedMilestones()
        if let bad = ms.first(where: { $0 > final + 1e-12 }) {
            throw ValidationError("--milestones: \(bad) is beyond the target \(final).")
        }
        switch schedule {
        case "oneshot": return .oneShot(final)
        case "geometric": return .geometric(fraction: stepFraction, milestones: Array(Set(ms + [final])).sorted())
        case "agp": return .polynomial(final: final, steps: steps, exponent: exponent)
        default:
            if schedule.hasPrefix("list:") {
                let list = try parseFractions(String(schedule.dropFirst(5)), option: "--schedule list")
                guard zip(list, list.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                    throw ValidationError("--schedule list: targets must not decrease (masks only shrink).")
                }
                return .list(list, milestones: ms)
            }
            throw ValidationError("Unknown --schedule '\(schedule)': use oneshot, geometric, agp or list:0.5,0.8,0.9.")
        }
    }

    func parsedProtect() throws -> Set<Int> {
        guard let protect else { return [] }
        return Set(try parseList(protect, option: "--protect") { Int($0).flatMap { $0 >= 0 ? $0 : nil } })
    }

    func parsedCaps() throws -> [Int: Double] {
        guard let cap else { return [:] }
        let pairs = try parseList(cap, option: "--cap") { item -> (Int, Double)? in
            let parts = item.split(separator: ":")
            guard parts.count == 2, let l = Int(parts[0]), l >= 0, let c = Double(parts[1]), c.isFinite, (0...1).contains(c) else { return nil }
            return (l, c)
        }
        return Dictionary(pairs, uniquingKeysWith: { $1 })
    }

    func parsedLRSchedule(epochs: Int) throws -> LearningRateSchedule {
        try parseLearningRateSchedule(lrSchedule, epochs: epochs, option: "lr-schedule")
    }

    func makeOptimizer() -> Optimizer {
        buildOptimizer(optimizer, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
    }

    /// The weights to rewind to and where they came from: --rewind-weights; else the file
    /// `topiary train --save-epochs K` wrote next to --model (`<model stem>.epoch-K.safetensors`);
    /// else, for K = 0, the initialisation rebuilt from the seed that `topiary train` recorded in
    /// the model's metadata.
    func rewindSnapshot(epoch k: Int, loaded: Model) throws -> (snapshot: WeightSnapshot, source: String) {
        func fromFile(_ path: String, _ m: Model? = nil) throws -> (snapshot: WeightSnapshot, source: String) {
            let m = try m ?? Model.load(from: path)
            guard m.network.sizes == loaded.network.sizes else {
                throw TopiaryError(.invalidShape, "\(path) is \(m.network.sizes.map(String.init).joined(separator: "-")), the model is \(loaded.network.sizes.map(String.init).joined(separator: "-"))")
            }
            return (WeightSnapshot(m.network, epoch: k), path)
        }
        if let rewindWeights { return try fromFile(rewindWeights) }
        let epochFile = Model.epochPath(for: model, epoch: k)
        if FileManager.default.fileExists(atPath: epochFile) {
            // Found by name only: it must come from the run that trained --model (a later run
            // to the same output without --save-epochs leaves an older run's file behind).
            let m = try Model.load(from: epochFile)
            guard m.metadata["epoch"] == "\(k)", let recipe = m.metadata["trained_with"],
                  recipe == loaded.metadata["trained_with"] else {
                throw TopiaryError(.invalidOption, "\(epochFile) does not record the training run of \(model) (its epoch or training recipe differs): pass --rewind-weights FILE to use it anyway")
            }
            return try fromFile(epochFile, m)
        }
        let bothWays = "pass --rewind-weights FILE with the weights at epoch \(k), or train with --save-epochs \(k) so that \(epochFile) exists"
        guard k == 0 else {
            throw TopiaryError(.invalidOption, "rewind:\(k) needs the weights at epoch \(k): \(bothWays)")
        }
        let recipe = loaded.metadata["trained_with"] ?? ""
        let words = recipe.split(separator: " ").map(String.init)
        guard let i = words.firstIndex(of: "--seed"), i + 1 < words.count, let seed = UInt64(words[i + 1]) else {
            throw TopiaryError(.invalidOption, "rewind:0 needs the initial weights and \(model) does not record its training seed: \(bothWays)")
        }
        let hidden = loaded.network.layers.first?.activation ?? .relu
        let output = loaded.network.layers.last?.activation ?? .identity
        return (WeightSnapshot(try Chain(sizes: loaded.network.sizes, hidden: hidden, output: output, seed: seed), epoch: 0),
                "the initialisation rebuilt from seed \(seed)")
    }

    // MARK: Report

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

    struct Report: Encodable {
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

    func run() throws {
        common.apply()
        let clock = ContinuousClock()
        let start = clock.now
        let loaded = try loadFashionMNISTModel(model)
        let dataset = try data.load(normalization: loaded.normalization)
        let network = loaded.network
        let original = network
        // An empty validation split (--validation 0) has no accuracy: null in JSON, "n/a" in text.
        let dense = (test: try network.evaluate(dataset.test), val: dataset.validation.isEmpty ? nil : try network.evaluate(dataset.validation))
        let valText = percentOrNotApplicable
        let say: (String) -> Void = { line in if !common.json { print(line); fflush(stdout) } }
        say("\(model): \(network.sizes.map(String.init).joined(separator: "-")), test accuracy \(percent(dense.test.accuracy)), validation \(valText(dense.val?.accuracy))")

        // Method.
        var layerTargets: [Double]?
        var impliedTarget: Double?   // with --budget: the overall sparsity the per-layer targets imply
        let method: IterativePruner.Method
        if structured != nil {
            let c: NeuronCriterion = criterion == "l1" ? .l1 : criterion == "l2" ? .l2
                : .activation(dataset.train.prefix(activationSamples), sampleCount: activationSamples)
            method = .neurons(NeuronPruner(criterion: c, scope: scope == "global" ? .global : .layerwise))
        } else {
            let sal: Saliency = saliency == "magnitude" ? .magnitude : saliency == "random" ? .random(seed: seed)
                : .taylor(data: dataset.train, batchCount: taylorBatches, batchSize: batchSize, seed: seed)
            var sc: PruningScope
            switch weightScope {
            case "layerwise": sc = .layerwise
            case "sensitivity":
                let sparsities = try sensitivitySparsities.map { try parseFractions($0, option: "--sensitivity-sparsities") }
                    ?? SensitivityAnalysis.defaultSparsities
                let bar = ProgressBar(enabled: !common.json)
                let curves = try SensitivityAnalysis(sparsities: sparsities, saliency: sal)
                    .run(network, validation: dataset.validation) { done, total in
                        bar.update("sensitivity", done: done, total: total, elapsed: 0, detail: "")
                    }
                bar.finish()
                if let budget {
                    layerTargets = curves.targets(budget: budget)
                    sc = curves.budgetScope(budget: budget)
                    say("sensitivity: per-layer targets within a \(percent(budget)) drop: \(layerTargets!.map { percent($0) }.joined(separator: ", "))")
                } else {
                    sc = curves.allocationScope()
                    layerTargets = curves.allocation(overall: try finalTarget())
                    say("sensitivity: per-layer sparsities at \(percent(try finalTarget())): \(layerTargets!.map { percent($0) }.joined(separator: ", "))")
                }
            default: sc = .global
            }
            sc.protectedLayers = try parsedProtect()
            sc.sparsityCaps = try parsedCaps()
            if budget != nil, weightScope == "sensitivity" {
                let sizes = network.layers.map { $0.weight.count + (pruneBiases ? $0.bias.count : 0) }
                guard let implied = sc.impliedSparsity(layerSizes: sizes) else {
                    throw TopiaryError(.invalidOption, "--budget: the sensitivity analysis gave \(layerTargets?.count ?? 0) per-layer targets for \(sizes.count) prunable layers")
                }
                impliedTarget = implied
                say("sensitivity: final target \(percent(implied)), the sparsity the per-layer targets imply")
            }
            method = .weights(Pruner(saliency: sal, scope: sc, includeBiases: pruneBiases))
        }

        // Plan and epochs.
        let plan: IterativePruner.Plan
        let stepCount: Int, milestoneCount: Int
        if schedule == "agp", let pruneEvery {
            let batchesPerEpoch = (dataset.train.count + batchSize - 1) / batchSize
            let count = max(1, finetuneEpochs * batchesPerEpoch / pruneEvery)
            plan = .gradual(GradualPruning(decay: PolynomialDecay(initial: 0, final: try finalTarget(implied: impliedTarget), exponent: exponent),
                                           start: 0, interval: pruneEvery, count: count), epochs: max(1, finetuneEpochs))
            stepCount = max(1, finetuneEpochs)
            milestoneCount = 1
        } else {
            let s = try parsedSchedule(implied: impliedTarget)
            let steps = try s.steps(from: 0)
            plan = .steps(s)
            stepCount = steps.count
            milestoneCount = steps.filter(\.isMilestone).count
        }
        let totalEpochs = stepCount * (pruneEvery != nil && schedule == "agp" ? 1 : finetuneEpochs) + milestoneCount * finalEpochs
        let policy: FineTuningPolicy
        var rewindFrom: String?
        switch try parsedPolicyKind() {
        case .continue: policy = .continue
        case .reinit: policy = .reinitialize(seed: seed)
        case .rewind(let k):
            let (snapshot, source) = try rewindSnapshot(epoch: k, loaded: loaded)
            policy = .rewind(snapshot)
            rewindFrom = source
            say("rewind:\(k): surviving weights go back to \(source) after every step")
        }
        let lrEpochs = lrRewind ? finetuneEpochs + finalEpochs : totalEpochs
        var fineTuning = FineTuning(policy: policy, epochsPerStep: finetuneEpochs, finalEpochs: finalEpochs,
                                    schedule: try parsedLRSchedule(epochs: lrEpochs), learningRateRewinding: lrRewind)
        fineTuning.resetsOptimizer = !keepOptimizerState
        let pruner = IterativePruner(network: network, dataset: dataset, method: method, plan: plan, fineTuning: fineTuning,
                                     optimizer: makeOptimizer(), batchSize: batchSize, seed: seed, checkpointDirectory: checkpoint)

        var milestones: [Milestone] = []
        var milestonePaths: [Int: String] = [:]
        let bar = ProgressBar(enabled: !common.json)
        let report = try pruner.run(resume: resume, progress: { p in
            bar.update("step \(p.step)/\(p.stepCount) epoch \(p.epoch)/\(p.epochCount)", done: p.training.batchesDone,
                       total: p.training.batchCount, elapsed: p.training.elapsed, detail: String(format: "loss %.4f", p.training.runningLoss))
        }, onStep: { r, net in
            bar.finish()
            say(String(format: "step %2d/%d  target %@  sparsity %@  layers %@  val %@  test %@  %d epoch(s)  prune %.2f ms  %.2f s%@",
                       r.step, stepCount + (pruneEvery != nil && schedule == "agp" ? 1 : 0), percent(r.targetSparsity), percent(r.sparsity),
                       structured != nil ? r.sizes.map(String.init).joined(separator: "-") : r.layerSparsity.map { percent($0) }.joined(separator: "/"),
                       valText(r.valAccuracy), percent(r.testAccuracy), r.epochs, r.pruneSeconds * 1000, r.seconds,
                       r.milestone ? "  ◆ milestone" : ""))
            if r.milestone, let pattern = milestoneOutput {
                let path = pattern.replacingOccurrences(of: "{sparsity}", with: String(format: "%.1f", 100 * r.targetSparsity))
                try Model(network: net, normalization: loaded.normalization,
                          metadata: ["pruned_from": model, "milestone_step": "\(r.step)"]).save(to: path)
                milestonePaths[r.step] = path
            }
        })
        // Milestones from the records (a resumed run includes the earlier ones).
        for r in report.steps where r.milestone {
            milestones.append(Milestone(step: r.step, target_sparsity: r.targetSparsity, sparsity: r.sparsity,
                                        val_accuracy: r.valAccuracy, test_accuracy: r.testAccuracy, model: milestonePaths[r.step]))
        }
        let prunedNetwork = pruner.network
        try Model(network: prunedNetwork, normalization: loaded.normalization,
                  metadata: ["pruned_with": CommandLine.arguments.dropFirst().joined(separator: " "),
                             "pruned_from": model]).save(to: output)

        var structuredReport: Structured?
        if structured != nil {
            let x = dataset.test.images
            let before = NeuronPruner.forwardSeconds(original, input: x, batch: 1000, repeats: 10)
            let after = NeuronPruner.forwardSeconds(prunedNetwork, input: x, batch: 1000, repeats: 10)
            let sample = dataset.test.prefix(1000).images
            let before1 = NeuronPruner.forwardSeconds(original, input: sample, batch: 1, repeats: 5)
            let after1 = NeuronPruner.forwardSeconds(prunedNetwork, input: sample, batch: 1, repeats: 5)
            structuredReport = Structured(sizes_before: original.sizes, sizes_after: prunedNetwork.sizes,
                                          forward_seconds_before: before, forward_seconds_after: after,
                                          speedup: before / after, batch1_speedup: before1 / after1)
            say(String(format: "structured: %@ → %@, forward pass over the test set %.2f ms → %.2f ms (×%.2f), batch 1 ×%.2f",
                       original.sizes.map(String.init).joined(separator: "-"), prunedNetwork.sizes.map(String.init).joined(separator: "-"),
                       before * 1000, after * 1000, before / after, before1 / after1))
        }
        let pruneTimes = report.steps.map(\.pruneSeconds).filter { $0 > 0 }
        let out = Report(steps: report.steps, final: report.final, milestones: milestones,
                         dense_test_accuracy: dense.test.accuracy, dense_val_accuracy: dense.val?.accuracy,
                         method: pruner.fingerprint, total_epochs: totalEpochs, seconds: (clock.now - start).seconds,
                         mean_prune_seconds: pruneTimes.isEmpty ? 0 : pruneTimes.reduce(0, +) / Double(pruneTimes.count),
                         output: output, structured: structuredReport, layer_targets: layerTargets, rewind_from: rewindFrom,
                         sparsity_counts: pruneBiases ? "weights and biases" : "weights")
        if common.json {
            try printJSON(out)
        } else {
            if milestones.count > 1 {
                print("milestones: " + milestones.map { "\(percent($0.sparsity)) → test \(percent($0.test_accuracy))" }.joined(separator: ", "))
            }
            print("final: test accuracy \(percent(report.final.testAccuracy)), sparsity\(pruneBiases ? " (weights and biases)" : "") \(percent(report.final.sparsity)), \(report.final.nonzeroParameters)/\(report.final.parameters) non-zero parameters, \(totalEpochs) epochs in \(String(format: "%.1f", out.seconds)) s; saved \(output)")
        }
    }
}

/// Parses comma-separated fractions in [0, 1].
func parseFractions(_ text: String, option: String) throws -> [Double] {
    try parseList(text, option: option) { Double($0).flatMap { $0.isFinite && (0...1).contains($0) ? $0 : nil } }
}
