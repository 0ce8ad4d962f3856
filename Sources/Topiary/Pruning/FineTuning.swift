/// The parameters of a network at one point of training, to rewind to (Frankle & Carbin 2019).
///
/// Take one during training (`WeightSnapshot(network, epoch: 0)` before the first epoch is the
/// lottery-ticket initialisation) or load one from a model file saved at that point.
///
/// ```swift
/// let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
/// let initial = WeightSnapshot(net, epoch: 0)
/// // … train, prune …
/// try initial.rewind(net)   // surviving weights back to their initial values, pruned ones stay 0
/// ```
public struct WeightSnapshot: Sendable, Equatable {
    /// The weights of every layer, `[out, in]`.
    public var weights: [Matrix]
    /// The biases of every layer.
    public var biases: [[Float]]
    /// The training epoch the snapshot was taken at, if known (0 = before training).
    public var epoch: Int?

    /// A copy of `network`'s weights and biases.
    public init(_ network: Chain, epoch: Int? = nil) {
        weights = network.layers.map(\.weight)
        biases = network.layers.map(\.bias)
        self.epoch = epoch
    }

    /// The initialisation of `model`'s training run, rebuilt from the seed and sizes of its
    /// ``Model/recipe``: bit for bit the weights training started from (epoch 0), which
    /// lottery-ticket rewinding (Frankle & Carbin 2019) resets the surviving weights to.
    ///
    /// ```swift
    /// let model = try Model.load(from: "dense.safetensors")
    /// let policy = FineTuningPolicy.rewind(try WeightSnapshot.initialization(of: model))
    /// ```
    ///
    /// - Throws: `invalidOption` when the model records no training recipe (a hand-built model, or
    ///   a file saved before recipes were recorded): its initial weights cannot be known.
    public static func initialization(of model: Model) throws -> WeightSnapshot {
        guard let recipe = model.recipe else {
            throw TopiaryError(.invalidOption, "the model records no training recipe, so its initial weights cannot be rebuilt; rewind to a snapshot of them instead")
        }
        // Check the recorded sizes against the network before building anything: a damaged or
        // hostile file must not make us allocate a network of its choosing.
        guard recipe.sizes == model.network.sizes else {
            throw TopiaryError(.invalidShape, "the model's training recipe describes a \(recipe.sizes.map(String.init).joined(separator: "-")) network, but the model is \(model.network.sizes.map(String.init).joined(separator: "-")); its initial weights cannot be rebuilt")
        }
        return WeightSnapshot(try recipe.initialNetwork(), epoch: 0)
    }

    /// Whether the layers chain (each layer's inputs are the previous layer's outputs) and every
    /// layer has one bias per output: ``weights`` and ``biases`` are public, so a hand-built
    /// snapshot may not.
    var isWellFormed: Bool {
        weights.count == biases.count && zip(weights, biases).allSatisfy { $0.rows == $1.count }
            && zip(weights, weights.dropFirst()).allSatisfy { $0.rows == $1.columns }
    }

    /// The layer sizes of the network the snapshot was taken from, input first.
    var sizes: [Int] {
        guard let first = weights.first else { return [] }
        return [first.columns] + weights.map(\.rows)
    }

    /// The snapshot restricted to the neurons of an original network that survive structured
    /// pruning: `kept[l]` lists, increasingly, the original indices of the outputs of layer `l`
    /// that remain (the last layer's outputs are all kept).
    func selecting(neurons kept: [[Int]]) -> WeightSnapshot {
        var s = self
        for l in weights.indices {
            let rows = l < kept.count ? kept[l] : Array(0..<weights[l].rows)
            let columns = l == 0 ? Array(0..<weights[l].columns) : (l - 1 < kept.count ? kept[l - 1] : Array(0..<weights[l].columns))
            var w = Matrix(rows: rows.count, columns: columns.count)
            for (i, r) in rows.enumerated() {
                for (j, c) in columns.enumerated() { w[i, j] = weights[l][r, c] }
            }
            s.weights[l] = w
            s.biases[l] = rows.map { biases[l][$0] }
        }
        return s
    }

    /// Sets every layer's weights to the snapshot's at surviving (unmasked) positions, and its biases
    /// to the snapshot's; pruned weights and pruned biases stay exactly zero.
    ///
    /// - Throws: `invalidShape` when the snapshot's layers do not match the network's.
    public func rewind(_ network: Chain) throws {
        guard weights.count == network.layers.count else {
            throw TopiaryError(.invalidShape, "the rewind snapshot has \(weights.count) layers, the network \(network.layers.count)")
        }
        for (l, layer) in network.layers.enumerated() {
            guard weights[l].rows == layer.weight.rows, weights[l].columns == layer.weight.columns,
                  biases[l].count == layer.bias.count else {
                throw TopiaryError(.invalidShape, "layer \(l) of the rewind snapshot is \(weights[l].rows)×\(weights[l].columns), the network's is \(layer.weight.rows)×\(layer.weight.columns)")
            }
        }
        for (l, layer) in network.layers.enumerated() {
            layer.weight = weights[l]
            layer.bias = biases[l]
            layer.applyMask()
        }
    }
}

/// What happens to the surviving weights after a pruning step: the article's *fine-tuning*.
///
/// ```swift
/// let policy = FineTuningPolicy.rewind(WeightSnapshot(initialNetwork, epoch: 0))   // lottery ticket
/// ```
public enum FineTuningPolicy {
    /// Keep training from the current weights (the article's recommendation).
    case `continue`
    /// Reset the surviving weights and biases to a snapshot, then train (Frankle & Carbin 2019).
    case rewind(WeightSnapshot)
    /// Redraw the surviving weights and biases from the initial distribution, `U(±1/√in)`,
    /// with a generator seeded by `seed` and the step number, then train.
    case reinitialize(seed: UInt64)

    /// A short description (`continue`, `rewind:0`, `reinit`).
    var name: String {
        switch self {
        case .continue: return "continue"
        case .rewind(let s): return "rewind:" + (s.epoch.map(String.init) ?? "snapshot")
        case .reinitialize: return "reinit"
        }
    }

    /// Applies the policy to `network` after pruning step `step` (from 1).
    ///
    /// - Throws: `invalidShape` when a rewind snapshot does not fit the network.
    func apply(to network: Chain, step: Int) throws {
        switch self {
        case .continue: return
        case .rewind(let snapshot): try snapshot.rewind(network)
        case .reinitialize(let seed):
            var rng = SeededRandom(seed: seed ^ (UInt64(step) &* 0xA24B_AED4_963E_E407))
            for layer in network.layers {
                let bound = 1 / Float(layer.inputSize).squareRoot()
                for i in 0..<layer.weight.count { layer.weight.storage[i] = rng.nextUniform(-bound, bound) }
                for i in 0..<layer.bias.count { layer.bias[i] = rng.nextUniform(-bound, bound) }
                layer.applyMask()
            }
        }
    }
}

/// How a network is fine-tuned after each pruning step.
///
/// Each step trains ``epochsPerStep`` epochs; a milestone step (the last one always is) trains
/// ``finalEpochs`` more. The learning rate is the optimizer's rate times ``schedule``, evaluated
/// at the epoch counted from the start of fine-tuning, or, with ``learningRateRewinding``
/// (Renda et al. 2020), from the start of each step: the schedule restarts at every step.
///
/// ```swift
/// var fineTuning = FineTuning(epochsPerStep: 1, finalEpochs: 2)
/// fineTuning.policy = .rewind(snapshot)
/// ```
public struct FineTuning {
    /// What happens to the surviving weights after pruning.
    public var policy: FineTuningPolicy
    /// Epochs trained after each pruning step.
    public var epochsPerStep: Int
    /// Extra epochs after each milestone step, the last step included.
    public var finalEpochs: Int
    /// The learning-rate multiplier as a function of the (fractional) fine-tuning epoch.
    public var schedule: LearningRateSchedule
    /// Whether the schedule restarts at every step (learning-rate rewinding).
    public var learningRateRewinding: Bool
    /// Whether the optimizer's state (momentum, moments) is cleared at every step (the default).
    ///
    /// Clearing it makes every step start from the network alone, which is what lets a checkpoint
    /// resume bit-exactly; keeping it carries momentum across steps, and a resumed run then
    /// restarts the state at the step it resumes from.
    public var resetsOptimizer: Bool = true

    /// Creates a fine-tuning configuration.
    public init(policy: FineTuningPolicy = .continue, epochsPerStep: Int = 1, finalEpochs: Int = 0,
                schedule: LearningRateSchedule = .constant, learningRateRewinding: Bool = false) {
        self.policy = policy
        self.epochsPerStep = epochsPerStep
        self.finalEpochs = finalEpochs
        self.schedule = schedule
        self.learningRateRewinding = learningRateRewinding
    }

    /// A short description for logs and checkpoints.
    var name: String {
        "\(policy.name), \(epochsPerStep) epoch(s)/step, +\(finalEpochs) at milestones, lr \(schedule.name)"
            + (learningRateRewinding ? ", lr rewinding" : "") + (resetsOptimizer ? "" : ", optimizer state kept")
    }
}
