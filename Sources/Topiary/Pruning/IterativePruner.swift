/// The article's loop: from a trained network, for each step of a schedule, prune, fine-tune
/// (policy), evaluate, checkpoint.
///
/// Each step records the target, the measured sparsity overall and per layer, validation and
/// test accuracy, and the seconds spent. With a checkpoint directory, every step ends by saving
/// the network (an atomic model file) and a small JSON state; ``run(resume:progress:onStep:)``
/// with `resume: true` continues an interrupted run from its last completed step and reproduces
/// the uninterrupted run bit for bit, because the optimizer starts fresh at every step (every
/// epoch in gradual mode) and the shuffles depend only on the seed and the epoch.
///
/// ```swift
/// let model = try Model.load(from: "dense.safetensors")
/// let data = try FashionMNIST.load(normalization: model.normalization)
/// let run = IterativePruner(network: model.network, dataset: data,
///                           method: .weights(Pruner(saliency: .magnitude, scope: .global)),
///                           plan: .steps(.geometric(fraction: 0.2, milestones: [0.9, 0.95, 0.98])),
///                           fineTuning: FineTuning(epochsPerStep: 1, finalEpochs: 2),
///                           optimizer: SGD(learningRate: 0.01, momentum: 0.9))
/// let report = try run.run()
/// ```
public final class IterativePruner {
    /// What is removed.
    public enum Method {
        /// Single weights (unstructured), chosen by a ``Pruner``.
        case weights(Pruner)
        /// Whole hidden neurons (structured); targets are fractions of the original hidden neurons.
        case neurons(NeuronPruner)
    }

    /// When pruning happens.
    public enum Plan {
        /// Prune at each step of a schedule, fine-tuning in between.
        case steps(PruningSchedule)
        /// Prune inside training every Δt iterations (Zhu & Gupta 2017) for `epochs` epochs, then
        /// prune to the final target (if not reached) and fine-tune ``FineTuning/finalEpochs``.
        /// One record per epoch, plus one for the final phase. Only with ``Method/weights(_:)``.
        ///
        /// ``GradualSchedule/init(initial:final:exponent:pruneEvery:epochs:batchesPerEpoch:)``
        /// spreads the pruning steps over the same `epochs`.
        case gradual(GradualSchedule, epochs: Int)
    }

    /// The network being pruned: a copy of the one given to the initialiser, changed in place by ``run(resume:progress:onStep:)``.
    public let network: Chain
    /// The data: train for fine-tuning, validation and test for the records.
    let dataset: Dataset
    /// What is removed.
    var method: Method
    /// When pruning happens.
    var plan: Plan
    /// How the network is fine-tuned.
    public var fineTuning: FineTuning
    /// The optimizer used for fine-tuning; reset at every step unless ``FineTuning/resetsOptimizer`` is off.
    let optimizer: Optimizer
    /// Examples per fine-tuning batch.
    var batchSize: Int
    /// The shuffling seed.
    var seed: UInt64
    /// The loss.
    var loss: Loss
    /// Where checkpoints go (`nil`: none).
    var checkpointDirectory: String?

    /// Creates the loop over a copy of `network`: the caller's network is never changed, and the
    /// pruned one is ``network`` (the report describes it).
    ///
    /// The defaults are the article's: one fine-tuning epoch after each step with the surviving
    /// weights kept (``FineTuningPolicy/continue``), by SGD with momentum 0.9 at learning rate 0.01,
    /// batches of 128.
    public init(network: Chain, dataset: Dataset, method: Method = .weights(Pruner()), plan: Plan,
                fineTuning: FineTuning = FineTuning(epochsPerStep: 1),
                optimizer: Optimizer = SGD(learningRate: 0.01, momentum: 0.9), batchSize: Int = 128, seed: UInt64 = 0,
                loss: Loss = .softmaxCrossEntropy, checkpointDirectory: String? = nil) {
        self.network = network.copy()
        self.dataset = dataset
        self.method = method
        self.plan = plan
        self.fineTuning = fineTuning
        self.optimizer = optimizer
        self.batchSize = batchSize
        self.seed = seed
        self.loss = loss
        self.checkpointDirectory = checkpointDirectory
    }

    /// One unit of work between checkpoints.
    struct Phase {
        var target: Double
        var milestone: Bool
        var epochs: Int
        var pruneFirst: Bool
        var gradual: Bool
    }

    func phases(initialSparsity: Double) throws -> [Phase] {
        switch plan {
        case .steps(let schedule):
            return try schedule.steps(from: initialSparsity).map {
                Phase(target: $0.target, milestone: $0.isMilestone,
                      epochs: fineTuning.epochsPerStep + ($0.isMilestone ? fineTuning.finalEpochs : 0),
                      pruneFirst: true, gradual: false)
            }
        case .gradual(let agp, let epochs):
            guard case .weights = method else {
                throw TopiaryError(.invalidOption, "gradual pruning inside training removes single weights; structured pruning needs a step schedule")
            }
            guard epochs > 0 else { throw TopiaryError(.invalidOption, "gradual pruning needs at least one epoch, got \(epochs)") }
            try agp.validate(stepLimit: Int(Int32.max))   // inside training no list of steps is built
            var list = (0..<epochs).map { _ in Phase(target: 0, milestone: false, epochs: 1, pruneFirst: false, gradual: true) }
            list.append(Phase(target: agp.final, milestone: true, epochs: fineTuning.finalEpochs, pruneFirst: true, gradual: false))
            return list
        }
    }

    /// The number of steps the run will record: the schedule's steps, or with
    /// ``Plan/gradual(_:epochs:)`` one per epoch plus the final phase.
    ///
    /// - Throws: as ``run(resume:progress:onStep:)`` for a schedule or plan that does not fit.
    public func plannedSteps() throws -> Int {
        try phases(initialSparsity: maskedFraction()).count
    }

    /// The fine-tuning epochs the run will train in all: ``FineTuning/epochsPerStep`` per step
    /// (one per epoch inside training) plus ``FineTuning/finalEpochs`` per milestone. A cosine
    /// learning-rate schedule over the whole run spans this many epochs.
    ///
    /// - Throws: as ``plannedSteps()``.
    public func plannedEpochs() throws -> Int {
        try phases(initialSparsity: maskedFraction()).reduce(0) { $0 + $1.epochs }
    }

    /// A description of everything that determines the run's result; a checkpoint only resumes a
    /// run with the same fingerprint.
    public var fingerprint: String {
        let m: String
        switch method {
        case .weights(let p): m = "weights(\(p.saliency.name); \(p.scope.name)\(p.includeBiases ? "; biases" : ""))"
        case .neurons(let n): m = "neurons(\(n.criterion.name); \(n.layerFractions.map { "\($0)" } ?? "uniform")\(n.isGlobal ? "; global" : "")\(n.repair.map { "; least-squares repair on \($0.count)" } ?? ""))"
        }
        let p: String
        switch plan {
        case .steps(let s): p = s.name
        case .gradual(let g, let e): p = "gradual(\(g.initial)→\(g.final) ^\(g.exponent), t0 \(g.start), Δt \(g.interval), n \(g.steps), \(e) epochs)"
        }
        return "\(m); \(p); \(fineTuning.name); lr \(optimizer.learningRate); batch \(batchSize); seed \(seed); loss \(loss.rawValue); train \(dataset.train.count)"
    }

    /// Runs the loop (or resumes it from the checkpoint directory) and returns the report.
    ///
    /// - Parameters:
    ///   - resume: continue from the checkpoint in `checkpointDirectory` if there is one.
    ///   - progress: called after every fine-tuning batch.
    ///   - onStep: called after every step with its record and the network (to save milestones).
    /// - Throws: ``TopiaryError``: `invalidOption` for bad schedules or a checkpoint of another run;
    ///   `invalidShape` when a rewind snapshot was not taken from a network of the sizes pruning
    ///   starts from;
    ///   file errors of the checkpoint (`corruptFile` when its state does not fit this run: more
    ///   records than steps, kept-neuron indices out of range, a network of other sizes);
    ///   `nonFinite` if fine-tuning diverges.
    public func run(resume: Bool = false, progress: ((PruningProgress) -> Void)? = nil,
                    onStep: ((PruningStepRecord, Chain) throws -> Void)? = nil) throws -> PruningReport {
        let trainer = try Trainer(network: network, optimizer: optimizer, loss: loss, batchSize: batchSize, seed: seed)
        let checkpoint = checkpointDirectory.map { PruningCheckpoint(directory: $0) }
        var state = PruningCheckpoint.State(fingerprint: fingerprint, epochsCompleted: 0,
                                            initialSparsity: maskedFraction(), originalHidden: Array(network.sizes.dropFirst().dropLast()),
                                            keptNeurons: network.sizes.dropFirst().dropLast().map { Array(0..<$0) },
                                            records: [], modelFile: nil)
        if resume, let checkpoint, let saved = try checkpoint.load(originalSizes: network.sizes) {
            guard saved.state.fingerprint == state.fingerprint else {
                throw TopiaryError(.invalidOption, "the checkpoint in \(checkpoint.directory) belongs to another run (\(saved.state.fingerprint)); this run is \(state.fingerprint)")
            }
            network.replaceLayers(with: saved.network)
            state = saved.state
            trainer.epochsCompleted = state.epochsCompleted
        }
        let phases = try self.phases(initialSparsity: state.initialSparsity)
        try checkpoint?.check(state, phaseCount: phases.count)
        if case .rewind(let snapshot) = fineTuning.policy {
            // Checked before any work: structured steps select rows and columns of the snapshot.
            let original = [network.inputSize] + state.originalHidden + [network.outputSize]
            guard snapshot.isWellFormed, snapshot.sizes == original else {
                throw TopiaryError(.invalidShape, "the rewind snapshot is \(snapshot.sizes.map(String.init).joined(separator: "-")), the network it should reset is \(original.map(String.init).joined(separator: "-"))")
            }
        }
        let baseSchedule = fineTuning.schedule
        let agp: GradualSchedule? = { if case .gradual(let g, _) = plan { return g }; return nil }()
        let batchesPerEpoch = (dataset.train.count + batchSize - 1) / batchSize
        let clock = ContinuousClock()

        let firstIndex = state.records.count
        for index in firstIndex..<phases.count {
            let phase = phases[index]
            let start = clock.now
            var pruneSeconds = 0.0
            if phase.pruneFirst {
                switch method {
                case .weights(let pruner):
                    pruneSeconds = try pruner.prune(network, to: phase.target).seconds
                    if !phase.gradual { try fineTuning.policy.apply(to: network, step: index + 1) }
                case .neurons(let pruner):
                    let t0 = clock.now
                    let step = try pruner.prune(network, to: phase.target, originalSizes: state.originalHidden)
                    state.keptNeurons = zip(state.keptNeurons, step.kept).map { old, kept in kept.map { old[$0] } }
                    pruneSeconds = (clock.now - t0).seconds
                    if case .rewind(let snapshot) = fineTuning.policy {
                        try snapshot.selecting(neurons: state.keptNeurons).rewind(network)
                    } else {
                        try fineTuning.policy.apply(to: network, step: index + 1)
                    }
                }
            }
            if fineTuning.resetsOptimizer || index == firstIndex { optimizer.reset() }
            let offset = Double(fineTuning.learningRateRewinding && !phase.gradual ? trainer.epochsCompleted : 0)
            trainer.schedule = LearningRateSchedule(name: baseSchedule.name) { t in baseSchedule(t - offset) }
            for e in 0..<phase.epochs {
                try trainer.trainEpoch(dataset.train, progress: progress.map { report in
                    { p in report(PruningProgress(step: index + 1, stepCount: phases.count, epoch: e + 1,
                                                  epochCount: phase.epochs, training: p)) }
                }, afterStep: phase.gradual ? { [network] t in
                    guard let agp, case .weights(let pruner) = self.method,
                          let s = agp.target(afterIteration: t + 1) else { return }
                    pruneSeconds += try pruner.prune(network, to: s).seconds
                } : nil)
            }
            let val = dataset.validation.isEmpty ? nil : try network.evaluate(dataset.validation, loss: loss)
            let test = try network.evaluate(dataset.test, loss: loss)
            let target = phase.gradual ? (agp?.sparsity(atIteration: trainer.epochsCompleted * batchesPerEpoch) ?? 0) : phase.target
            let record = PruningStepRecord(
                step: index + 1, targetSparsity: target, sparsity: reportedSparsity,
                layerSparsity: reportedLayerSparsity, sizes: network.sizes,
                valAccuracy: val?.accuracy, valLoss: val?.loss, testAccuracy: test.accuracy, testLoss: test.loss,
                epochs: phase.epochs, milestone: phase.milestone, pruneSeconds: pruneSeconds,
                seconds: (clock.now - start).seconds)
            state.records.append(record)
            state.epochsCompleted = trainer.epochsCompleted
            try checkpoint?.save(network: network, normalization: dataset.normalization, state: &state)
            try onStep?(record, network)
        }
        let val = dataset.validation.isEmpty ? nil : try network.evaluate(dataset.validation, loss: loss)
        let test = try network.evaluate(dataset.test, loss: loss)
        return PruningReport(steps: state.records, final: .init(
            testAccuracy: test.accuracy, valAccuracy: val?.accuracy, sparsity: reportedSparsity,
            nonzeroParameters: network.nonzeroParameterCount, parameters: network.parameterCount, sizes: network.sizes))
    }

    /// Whether the method prunes biases with the weights; then the records' sparsities count
    /// biases too.
    var countsBiases: Bool {
        if case .weights(let pruner) = method { return pruner.includeBiases }
        return false
    }

    /// The sparsity the records report: exact zeros among all weights, or among all weights and
    /// biases when ``countsBiases``.
    private var reportedSparsity: Double { countsBiases ? network.parameterSparsity : network.sparsity }

    /// ``reportedSparsity`` per layer.
    private var reportedLayerSparsity: [Double] {
        network.layers.map { countsBiases ? $0.parameterSparsity : $0.sparsity }
    }

    /// The fraction of prunable parameters masked out (weights, plus biases when ``countsBiases``).
    private func maskedFraction() -> Double {
        let layers = network.layers
        let biases = countsBiases
        let n = layers.reduce(0) { $0 + $1.weight.count + (biases ? $1.bias.count : 0) }
        let pruned = layers.reduce(0) { $0 + $1.weight.count - $1.keptCount + (biases ? $1.bias.count - $1.keptBiasCount : 0) }
        return n == 0 ? 0 : Double(pruned) / Double(n)
    }
}
