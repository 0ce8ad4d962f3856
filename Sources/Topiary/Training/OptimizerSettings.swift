/// An optimizer described by value, its kind and hyper-parameters: what a ``TrainingRecipe``
/// records, and what a command line chooses, before the stateful ``Optimizer`` is made.
///
/// ```swift
/// let settings = OptimizerSettings(.nesterov, learningRate: 0.01, momentum: 0.9)
/// let optimizer = settings.makeOptimizer()   // SGD(learningRate: 0.01, momentum: 0.9, nesterov: true)
/// ```
public struct OptimizerSettings: Codable, Sendable, Equatable {
    /// Which optimizer.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// ``SGD`` with momentum.
        case sgd
        /// ``SGD`` with Nesterov momentum.
        case nesterov
        /// ``Adam`` with L2 weight decay.
        case adam
        /// ``Adam`` with decoupled weight decay (AdamW).
        case adamw
    }

    /// Which optimizer.
    public var kind: Kind
    /// The learning rate.
    public var learningRate: Float
    /// The momentum of ``Kind/sgd`` and ``Kind/nesterov`` (ignored by Adam).
    public var momentum: Float
    /// Weight decay: L2 for SGD and Adam, decoupled for AdamW.
    public var weightDecay: Float

    /// Creates the settings.
    public init(_ kind: Kind = .sgd, learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    /// A new optimizer with these settings and no state.
    public func makeOptimizer() -> Optimizer {
        switch kind {
        case .sgd: return SGD(learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
        case .nesterov: return SGD(learningRate: learningRate, momentum: momentum, nesterov: true, weightDecay: weightDecay)
        case .adam: return Adam(learningRate: learningRate, weightDecay: weightDecay)
        case .adamw: return Adam.adamW(learningRate: learningRate, weightDecay: weightDecay)
        }
    }

    enum CodingKeys: String, CodingKey {
        case kind, momentum
        case learningRate = "learning_rate", weightDecay = "weight_decay"
    }
}
