import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

// The option groups of `prune` (saliency also of `sensitivity`), one per axis of pruning; each
// parses into library values.

/// How important a weight is (`prune` and `sensitivity`).
struct SaliencyOptions: ParsableArguments {
    enum Kind: String, CaseIterable, ExpressibleByArgument { case magnitude, random, taylor, obs }

    @Option(help: "Saliency of a weight: magnitude, random (a control, drawn from --seed), taylor (|w·∂L/∂w| over --taylor-batches training batches shuffled by --seed) or obs (Optimal Brain Surgeon with SparseGPT reconstruction on --calibration-samples training images: each step also updates the kept weights; per-layer counts as global magnitude would prune).")
    var saliency: Kind = .magnitude

    @Option(name: .customLong("taylor-batches"), help: "Batches of training data the Taylor saliency averages over.")
    var taylorBatches: Int = 10

    @Option(name: .customLong("calibration-samples"), help: "With --saliency obs: the first N training images whose layer inputs give each layer's Hessian 2·XᵀX/n; with --repair least-squares: the samples the repair fits.")
    var calibrationSamples: Int = 2048

    enum Budget: String, CaseIterable, ExpressibleByArgument { case magnitude, global }

    @Option(name: .customLong("obs-budget"), help: "With --saliency obs: per-layer counts from global magnitude ranking (magnitude, the default, as SparseGPT is used) or from the OBS errors w²/[H⁻¹]_qq of all layers ranked together (global).")
    var obsBudget: Budget = .magnitude

    @Option(help: "With --saliency obs: dampening λ added to the Hessian's diagonal, as a fraction of its mean diagonal; with --repair least-squares: the same for its normal equations.")
    var damping: Double = 0.01

    func validate() throws {
        guard (1...1_000).contains(taylorBatches) else { throw ValidationError("--taylor-batches must be between 1 and 1000.") }
        guard (1...1_000_000).contains(calibrationSamples) else { throw ValidationError("--calibration-samples must be between 1 and 1000000.") }
        guard damping.isFinite, damping >= 0 else { throw ValidationError("--damping must be a finite number at least 0.") }
    }

    /// The saliency; `seed` draws the random scores and shuffles the Taylor batches.
    func saliency(seed: UInt64, train: LabeledData, batchSize: Int) -> Saliency {
        switch saliency {
        case .magnitude: return .magnitude
        case .random: return .random(seed: seed)
        case .taylor: return .taylor(data: train, batchCount: taylorBatches, batchSize: batchSize, seed: seed)
        case .obs: return .obs(data: train, calibrationSamples: calibrationSamples, damping: damping, globalBudget: obsBudget == .global)
        }
    }
}

/// What is removed: single weights (and biases), or whole neurons.
struct StructureOptions: ParsableArguments {
    enum Structure: String, CaseIterable, ExpressibleByArgument { case neurons }
    enum Criterion: String, CaseIterable, ExpressibleByArgument { case l1, l2, activation }
    enum Repair: String, CaseIterable, ExpressibleByArgument {
        case none
        case leastSquares = "least-squares"
    }

    @Option(help: "Structured pruning: 'neurons' removes whole hidden neurons (targets are fractions of hidden neurons).")
    var structured: Structure?

    @Option(help: "Neuron score for --structured: l1, l2 (of incoming weights) or activation (mean |activation| on --activation-samples training images).")
    var criterion: Criterion = .l1

    @Option(name: .customLong("activation-samples"), help: "Training images for the activation criterion.")
    var activationSamples: Int = 2000

    @Option(help: "With --structured neurons: 'least-squares' re-fits each layer after a pruned one (weights and bias) so that on --calibration-samples training images its kept neurons match the unpruned network's (outputs after a ReLU, else pre-activations; dampening --damping); 'none' (the default) only removes.")
    var repair: Repair = .none

    @Flag(name: .customLong("prune-biases"), help: "Biases take part in the ranking and selection like weights (|b| for magnitude, |b·∂L/∂b| for taylor); the target and the reported sparsity then count weights and biases together. Biases are not pruned by default.")
    var pruneBiases = false

    var neurons: Bool { structured != nil }

    func validate() throws {
        guard activationSamples >= 1 else { throw ValidationError("--activation-samples must be at least 1.") }
        if repair != .none, !neurons { throw ValidationError("--repair applies to --structured neurons.") }
        if neurons, pruneBiases {
            throw ValidationError("--prune-biases prunes single biases; it cannot be combined with --structured (removing a neuron removes its bias).")
        }
    }

    func criterion(train: LabeledData) -> NeuronCriterion {
        switch criterion {
        case .l1: return .l1
        case .l2: return .l2
        case .activation: return .activation(train.prefix(activationSamples), sampleCount: activationSamples)
        }
    }
}

/// Where the target applies.
struct ScopeOptions: ParsableArguments {
    enum Kind: String, CaseIterable, ExpressibleByArgument { case global, layerwise, sensitivity }

    @Option(help: "Scope: global (one threshold), layerwise (same fraction per layer) or sensitivity (per-layer targets from a sensitivity analysis on the validation split). Default: global. With --structured neurons: layerwise (the default: the same fraction of each hidden layer) or global (all hidden neurons ranked together by scores comparable across layers: mean |w| for l1, L2 norm / √fan-in for l2, mean |activation|; every layer keeps at least one neuron).")
    var scope: Kind?

    @Option(help: "Prunable layers (from 0) never pruned, comma-separated.")
    var protect: String?

    @Option(help: "Sparsity caps, comma-separated LAYER:MAX, e.g. 2:0.5 keeps the output layer at most 50% sparse.")
    var cap: String?

    @Option(help: "With --scope sensitivity: per-layer targets are the largest sparsities whose validation accuracy drop stays within this budget (a fraction, 0.005 = half a point), and the final target is the overall sparsity they imply (so not with --target); without it, per-layer sparsities reaching each step's target with the smallest predicted drop.")
    var budget: Double?

    @Option(name: .customLong("sensitivity-sparsities"), help: "Sparsities the sensitivity analysis tries, comma-separated (default 0.1…0.9, 0.95, 0.98, 0.99).")
    var sensitivitySparsities: String?

    func validate() throws {
        if let budget { guard budget.isFinite, budget >= 0 else { throw ValidationError("--budget must be at least 0.") } }
        _ = try weightScope()
        _ = try sparsities()
    }

    /// The scope of weight pruning, protection and caps included (global by default; for
    /// sensitivity, global until the analysis replaces its allocation).
    func weightScope() throws -> PruningScope {
        let protected = try protect.map { try parseList($0, option: "--protect") { Int($0).flatMap { $0 >= 0 ? $0 : nil } } } ?? []
        let caps = try cap.map {
            try parseList($0, option: "--cap") { item -> (Int, Double)? in
                let parts = item.split(separator: ":")
                guard parts.count == 2, let l = Int(parts[0]), l >= 0, let c = Double(parts[1]), c.isFinite, (0...1).contains(c) else { return nil }
                return (l, c)
            }
        } ?? []
        var result: PruningScope = scope == .layerwise ? .layerwise : .global
        result.protectedLayers = Set(protected)
        result.sparsityCaps = Dictionary(caps, uniquingKeysWith: { $1 })
        return result
    }

    /// The scope of neuron pruning (layerwise by default).
    var neuronScope: PruningScope { scope == .global ? .global : .layerwise }

    /// The sparsities the sensitivity analysis tries.
    func sparsities() throws -> [Double] {
        try sensitivitySparsities.map { try parseFractions($0, option: "--sensitivity-sparsities") } ?? SensitivityAnalysis.defaultSparsities
    }
}

/// How much is removed, and when.
struct ScheduleOptions: ParsableArguments {
    enum Kind: ExpressibleByArgument, Equatable {
        case oneshot, geometric, agp
        case list([Double])

        init?(argument: String) {
            switch argument {
            case "oneshot": self = .oneshot
            case "geometric": self = .geometric
            case "agp": self = .agp
            default:
                guard argument.hasPrefix("list:"), let list = try? parseFractions(String(argument.dropFirst(5)), option: "--schedule list") else { return nil }
                self = .list(list)
            }
        }

        var defaultValueDescription: String {
            switch self {
            case .oneshot: return "oneshot"
            case .geometric: return "geometric"
            case .agp: return "agp"
            case .list(let l): return "list:" + l.map { "\($0)" }.joined(separator: ",")
            }
        }
    }

    @Option(help: "oneshot, geometric (--step-fraction of the remaining weights per step), agp (Zhu & Gupta, --steps steps, or inside training with --prune-every) or list:0.5,0.8,0.9.")
    var schedule: Kind = .geometric

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

    func validate() throws {
        if let target { guard target.isFinite, (0...1).contains(target) else { throw ValidationError("--target must be in [0, 1].") } }
        guard stepFraction.isFinite, stepFraction >= 0.001, stepFraction <= 1 else { throw ValidationError("--step-fraction must be in [0.001, 1].") }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps must be between 1 and 100000.") }
        guard exponent.isFinite, exponent > 0 else { throw ValidationError("--exponent must be positive.") }
        if let pruneEvery { guard pruneEvery >= 1 else { throw ValidationError("--prune-every must be at least 1.") } }
        if case .list(let list) = schedule, !zip(list, list.dropFirst()).allSatisfy({ $0 <= $1 }) {
            throw ValidationError("--schedule list: targets must not decrease (masks only shrink).")
        }
        _ = try pruningSchedule(final: finalTarget(neurons: false))
    }

    /// Whether pruning happens inside training (agp with --prune-every).
    var inTraining: Bool { schedule == .agp && pruneEvery != nil }

    func parsedMilestones() throws -> [Double] {
        try milestones.map { try parseFractions($0, option: "--milestones") } ?? []
    }

    /// --target, else the last milestone, else the end of a list, else 0.9 (0.5 of the neurons).
    func finalTarget(neurons: Bool) -> Double {
        if let target { return target }
        if let last = (try? parsedMilestones())?.max() { return last }
        if case .list(let list) = schedule, let last = list.last { return last }
        return neurons ? 0.5 : 0.9
    }

    func pruningSchedule(final: Double) throws -> PruningSchedule {
        let ms = try parsedMilestones()
        if let bad = ms.first(where: { $0 > final + 1e-12 }) { throw ValidationError("--milestones: \(bad) is beyond the target \(final).") }
        switch schedule {
        case .oneshot: return .oneShot(final)
        case .geometric: return .geometric(fraction: stepFraction, milestones: Array(Set(ms + [final])).sorted())
        case .agp: return .gradual(GradualSchedule(final: final, exponent: exponent, steps: steps))
        case .list(let list): return .list(list, milestones: ms)
        }
    }

    /// The plan: inside training over `epochs` epochs of `batchesPerEpoch` batches with
    /// --prune-every, else the schedule's steps.
    func plan(final: Double, epochs: Int, batchesPerEpoch: Int) throws -> IterativePruner.Plan {
        guard inTraining, let pruneEvery else { return .steps(try pruningSchedule(final: final)) }
        let epochs = max(1, epochs)
        return .gradual(GradualSchedule(final: final, exponent: exponent, pruneEvery: pruneEvery, epochs: epochs,
                                        batchesPerEpoch: batchesPerEpoch), epochs: epochs)
    }
}

/// What happens after each step.
struct FineTuningOptions: ParsableArguments {
    enum Policy: ExpressibleByArgument, Equatable {
        case `continue`, reinit
        case rewind(epoch: Int)

        init?(argument: String) {
            switch argument {
            case "continue": self = .continue
            case "reinit": self = .reinit
            default:
                guard argument.hasPrefix("rewind:"), let k = Int(argument.dropFirst(7)), k >= 0 else { return nil }
                self = .rewind(epoch: k)
            }
        }

        var defaultValueDescription: String {
            switch self {
            case .continue: return "continue"
            case .reinit: return "reinit"
            case .rewind(let k): return "rewind:\(k)"
            }
        }
    }

    @Option(name: .customLong("finetune-epochs"), help: "Fine-tuning epochs after each step (with --prune-every: the epochs pruning is spread over).")
    var finetuneEpochs: Int = 1

    @Option(name: .customLong("final-epochs"), help: "Extra epochs after each milestone and after the last step.")
    var finalEpochs: Int = 2

    @Option(help: "continue, rewind:K (surviving weights back to those at training epoch K; K = 0 is the lottery-ticket reset) or reinit.")
    var finetune: Policy = .continue

    @Option(name: .customLong("rewind-weights"), help: "A model file with the weights to rewind to. Default: <model stem>.epoch-K.safetensors next to --model when it exists (topiary train --save-epochs K writes it), else for rewind:0 the initialisation, rebuilt from the training recipe recorded in --model.")
    var rewindWeights: String?

    @Flag(name: .customLong("lr-rewind"), help: "Restart the learning-rate schedule at every step (Renda et al. 2020).")
    var lrRewind = false

    @Flag(name: .customLong("keep-optimizer-state"), help: "Carry momentum across steps instead of clearing it at every step (a resumed run then restarts it at the resumed step).")
    var keepOptimizerState = false

    func validate() throws {
        guard (0...10_000).contains(finetuneEpochs), (0...10_000).contains(finalEpochs) else {
            throw ValidationError("--finetune-epochs and --final-epochs must be between 0 and 10000.")
        }
    }

    /// The policy, and for a rewind where its weights come from: --rewind-weights; else the file
    /// `topiary train --save-epochs K` wrote beside `path` (it must record the training run of
    /// `model`); else, for K = 0, the initialisation rebuilt from the model's training recipe.
    func policy(model: Model, path: String, seed: UInt64) throws -> (policy: FineTuningPolicy, source: String?) {
        guard case .rewind(let k) = finetune else { return (finetune == .reinit ? .reinitialize(seed: seed) : .continue, nil) }
        if let rewindWeights { return (.rewind(WeightSnapshot(try Model.load(from: rewindWeights).network, epoch: k)), rewindWeights) }
        let file = epochPath(for: path, epoch: k)
        if FileManager.default.fileExists(atPath: file) {
            // Found by name only: a later run to the same output without --save-epochs leaves an older run's file behind.
            let snapshot = try Model.load(from: file)
            guard snapshot.isSnapshot(of: model, atEpoch: k) else {
                throw TopiaryError(.invalidOption, "\(file) does not record the training run of \(path) (its epoch or training recipe differs): pass --rewind-weights FILE to use it anyway")
            }
            return (.rewind(WeightSnapshot(snapshot.network, epoch: k)), file)
        }
        let bothWays = "pass --rewind-weights FILE with the weights at epoch \(k), or train with --save-epochs \(k) so that \(file) exists"
        guard k == 0, let seed = model.recipe?.seed else {
            throw TopiaryError(.invalidOption, k == 0 ? "rewind:0 needs the initial weights and \(path) records no training recipe: \(bothWays)"
                                                      : "rewind:\(k) needs the weights at epoch \(k): \(bothWays)")
        }
        return (.rewind(try .initialization(of: model)), "the initialisation rebuilt from seed \(seed)")
    }

    func fineTuning(policy: FineTuningPolicy) -> FineTuning {
        var fineTuning = FineTuning(policy: policy, epochsPerStep: finetuneEpochs, finalEpochs: finalEpochs, learningRateRewinding: lrRewind)
        fineTuning.resetsOptimizer = !keepOptimizerState
        return fineTuning
    }
}
