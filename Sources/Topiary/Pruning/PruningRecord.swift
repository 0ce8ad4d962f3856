/// What one step of iterative pruning measured.
///
/// `sparsity` and `layerSparsity` count exact zeros in the weights (the fraction a saved file
/// shows), or in the weights and biases together when the pruner includes biases
/// (``Pruner/includeBiases``); for structured pruning they stay near 0 and ``sizes`` shows the
/// smaller layers.
public struct PruningStepRecord: Encodable, Sendable, Equatable {
    /// The step number, from 1.
    public var step: Int
    /// The schedule's target (overall weight sparsity, or the fraction of hidden neurons removed).
    public var targetSparsity: Double
    /// The fraction of all weights (and biases, when they are pruned) that are exactly zero after the step.
    public var sparsity: Double
    /// The same per layer.
    public var layerSparsity: [Double]
    /// The layer sizes after the step, input first.
    public var sizes: [Int]
    /// Validation accuracy after fine-tuning; `nil` (JSON `null`) without a validation split.
    public var valAccuracy: Double?
    /// Validation loss after fine-tuning; `nil` (JSON `null`) without a validation split.
    public var valLoss: Double?
    /// Test accuracy after fine-tuning (reported, never used for decisions).
    public var testAccuracy: Double
    /// Test loss after fine-tuning.
    public var testLoss: Double
    /// Fine-tuning epochs in this step.
    public var epochs: Int
    /// Whether the step is a milestone.
    public var milestone: Bool
    /// Seconds spent choosing and applying the masks.
    public var pruneSeconds: Double
    /// Seconds of the whole step (pruning, fine-tuning, evaluation).
    public var seconds: Double

    /// Creates a record.
    init(step: Int, targetSparsity: Double, sparsity: Double, layerSparsity: [Double], sizes: [Int],
                valAccuracy: Double?, valLoss: Double?, testAccuracy: Double, testLoss: Double, epochs: Int,
                milestone: Bool, pruneSeconds: Double, seconds: Double) {
        self.step = step
        self.targetSparsity = targetSparsity
        self.sparsity = sparsity
        self.layerSparsity = layerSparsity
        self.sizes = sizes
        self.valAccuracy = valAccuracy
        self.valLoss = valLoss
        self.testAccuracy = testAccuracy
        self.testLoss = testLoss
        self.epochs = epochs
        self.milestone = milestone
        self.pruneSeconds = pruneSeconds
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case step, sparsity, sizes, epochs, milestone, seconds
        case targetSparsity = "target_sparsity", layerSparsity = "layer_sparsity"
        case valAccuracy = "val_accuracy", valLoss = "val_loss", testAccuracy = "test_accuracy", testLoss = "test_loss"
        case pruneSeconds = "prune_seconds"
    }

    /// Encodes every field; missing validation figures become `null` rather than disappearing.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step)
        try c.encode(targetSparsity, forKey: .targetSparsity)
        try c.encode(sparsity, forKey: .sparsity)
        try c.encode(layerSparsity, forKey: .layerSparsity)
        try c.encode(sizes, forKey: .sizes)
        try c.encode(valAccuracy, forKey: .valAccuracy)
        try c.encode(valLoss, forKey: .valLoss)
        try c.encode(testAccuracy, forKey: .testAccuracy)
        try c.encode(testLoss, forKey: .testLoss)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(milestone, forKey: .milestone)
        try c.encode(pruneSeconds, forKey: .pruneSeconds)
        try c.encode(seconds, forKey: .seconds)
    }
}

/// The outcome of an iterative pruning run.
public struct PruningReport: Encodable, Sendable, Equatable {
    /// One record per step.
    public var steps: [PruningStepRecord]
    /// The final network's figures.
    public var final: Final

    /// The final network's figures.
    public struct Final: Encodable, Sendable, Equatable {
        /// Test accuracy.
        public var testAccuracy: Double
        /// Validation accuracy; `nil` (JSON `null`) without a validation split.
        public var valAccuracy: Double?
        /// The fraction of all weights (and biases, when they are pruned) that are exactly zero.
        public var sparsity: Double
        /// Weights and biases that are not exactly zero.
        public var nonzeroParameters: Int
        /// All weights and biases.
        public var parameters: Int
        /// Layer sizes, input first.
        public var sizes: [Int]

        enum CodingKeys: String, CodingKey {
            case sparsity, parameters, sizes
            case testAccuracy = "test_accuracy", valAccuracy = "val_accuracy", nonzeroParameters = "nonzero_parameters"
        }

        /// Encodes every field; a missing validation accuracy becomes `null` rather than disappearing.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(testAccuracy, forKey: .testAccuracy)
            try c.encode(valAccuracy, forKey: .valAccuracy)
            try c.encode(sparsity, forKey: .sparsity)
            try c.encode(nonzeroParameters, forKey: .nonzeroParameters)
            try c.encode(parameters, forKey: .parameters)
            try c.encode(sizes, forKey: .sizes)
        }
    }
}

/// Progress of an iterative pruning run, for progress bars.
public struct PruningProgress: Sendable {
    /// The step number, from 1.
    public var step: Int
    /// The number of steps.
    public var stepCount: Int
    /// The epoch within the step, from 1.
    public var epoch: Int
    /// Epochs in this step.
    public var epochCount: Int
    /// Progress inside the epoch.
    public var training: TrainingProgress
}

extension PruningReport: CustomStringConvertible {
    /// A table of the steps (target, sparsity, accuracies, epochs) and the final figures.
    public var description: String {
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        func value(_ x: Double?) -> String { x.map(percent) ?? "n/a" }
        var lines = ["step   target  sparsity    val acc   test acc  epochs"]
        for r in steps {
            lines.append(pad("\(r.step)", 4) + pad(percent(r.targetSparsity), 9) + pad(percent(r.sparsity), 10)
                         + pad(value(r.valAccuracy), 11) + pad(percent(r.testAccuracy), 11) + pad("\(r.epochs)", 8)
                         + (r.milestone ? "  milestone" : ""))
        }
        lines.append("final: test accuracy \(percent(final.testAccuracy)), sparsity \(percent(final.sparsity)), "
                     + "\(final.nonzeroParameters) of \(final.parameters) parameters non-zero, sizes "
                     + final.sizes.map(String.init).joined(separator: "-"))
        return lines.joined(separator: "\n")
    }
}
