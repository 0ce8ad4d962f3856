/// How a network was trained: everything that determines its weights, recorded in the model file
/// (``Model/recipe``) as typed values rather than free text.
///
/// A recipe rebuilds the initialisation (``initialNetwork()``, which lottery-ticket rewinding
/// needs) and tells whether a snapshot saved during training belongs to the same run
/// (`Model.isSnapshot(of:atEpoch:)`).
///
/// ```swift
/// let recipe = TrainingRecipe(sizes: [784, 300, 100, 10],
///                             optimizer: OptimizerSettings(.sgd, learningRate: 0.05, momentum: 0.9),
///                             epochs: 15, batchSize: 128, seed: 0)
/// let initial = try recipe.initialNetwork()   // the weights before the first epoch
/// ```
public struct TrainingRecipe: Codable, Sendable, Equatable {
    /// The layer sizes, input first.
    public var sizes: [Int]
    /// The activation of the hidden layers.
    public var hiddenActivation: Activation
    /// The activation of the output layer.
    public var outputActivation: Activation
    /// The optimizer and its hyper-parameters.
    public var optimizer: OptimizerSettings
    /// The learning-rate schedule, by its ``LearningRateSchedule/name`` (`constant`, `cosine(15)`, `step(5, 0.1)`).
    public var learningRateSchedule: String
    /// Training epochs.
    public var epochs: Int
    /// Examples per batch.
    public var batchSize: Int
    /// The seed of the initialisation and of the shuffles.
    public var seed: UInt64
    /// Training examples held out for validation.
    public var validationCount: Int
    /// The number of training examples used, when limited to the first ones.
    public var trainLimit: Int?
    /// Whether the inputs were standardised (else only scaled).
    public var standardized: Bool
    /// Threads of the products (their number can change the rounding of sums).
    public var threads: Int

    /// Creates a recipe.
    public init(sizes: [Int], hiddenActivation: Activation = .relu, outputActivation: Activation = .identity,
                optimizer: OptimizerSettings, learningRateSchedule: String = "constant", epochs: Int, batchSize: Int,
                seed: UInt64, validationCount: Int = 0, trainLimit: Int? = nil, standardized: Bool = true, threads: Int = 1) {
        self.sizes = sizes
        self.hiddenActivation = hiddenActivation
        self.outputActivation = outputActivation
        self.optimizer = optimizer
        self.learningRateSchedule = learningRateSchedule
        self.epochs = epochs
        self.batchSize = batchSize
        self.seed = seed
        self.validationCount = validationCount
        self.trainLimit = trainLimit
        self.standardized = standardized
        self.threads = threads
    }

    /// The network before any training: `Chain(sizes:hidden:output:seed:)` with the recipe's
    /// sizes, activations and seed, bit for bit the weights training started from.
    ///
    /// - Throws: `invalidShape` when the sizes do not make a network.
    public func initialNetwork() throws -> Chain {
        try Chain(sizes: sizes, hidden: hiddenActivation, output: outputActivation, seed: seed)
    }

    enum CodingKeys: String, CodingKey {
        case sizes, optimizer, epochs, seed, standardized, threads
        case hiddenActivation = "hidden_activation", outputActivation = "output_activation"
        case learningRateSchedule = "learning_rate_schedule", batchSize = "batch_size"
        case validationCount = "validation_count", trainLimit = "train_limit"
    }
}
