/// One epoch's numbers, as reported by ``Trainer/fit(_:epochs:progress:onEpoch:)`` and the CLI's `--json`.
///
/// Without a validation split (`--validation 0`) the validation figures are `nil`, encoded as
/// JSON `null`.
public struct EpochRecord: Encodable, Sendable, Equatable {
    /// The epoch number, from 1.
    public var epoch: Int
    /// The mean training loss over the epoch's batches.
    public var trainLoss: Double
    /// Loss on the validation split; `nil` when the split is empty.
    public var valLoss: Double?
    /// Accuracy on the validation split, a fraction in `0...1`; `nil` when the split is empty.
    public var valAccuracy: Double?
    /// Accuracy on the test split (reported, never used for decisions).
    public var testAccuracy: Double
    /// Seconds spent training (forward, backward, optimizer) in this epoch, evaluation excluded.
    public var seconds: Double

    /// Creates a record.
    init(epoch: Int, trainLoss: Double, valLoss: Double?, valAccuracy: Double?, testAccuracy: Double, seconds: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.valLoss = valLoss
        self.valAccuracy = valAccuracy
        self.testAccuracy = testAccuracy
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case epoch, seconds
        case trainLoss = "train_loss", valLoss = "val_loss"
        case valAccuracy = "val_accuracy", testAccuracy = "test_accuracy"
    }

    /// Encodes every field; missing validation figures become `null` rather than disappearing.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(trainLoss, forKey: .trainLoss)
        try c.encode(valLoss, forKey: .valLoss)
        try c.encode(valAccuracy, forKey: .valAccuracy)
        try c.encode(testAccuracy, forKey: .testAccuracy)
        try c.encode(seconds, forKey: .seconds)
    }
}

/// Progress inside an epoch, for progress bars.
public struct TrainingProgress: Sendable {
    /// The epoch number, from 1.
    public var epoch: Int
    /// Batches done in this epoch.
    public var batchesDone: Int
    /// Batches in this epoch.
    public var batchCount: Int
    /// The mean loss of the batches done so far.
    public var runningLoss: Double
    /// Seconds since the epoch started.
    public var elapsed: Double
}

/// Trains a ``Chain`` with minibatch gradient descent: for each batch, forward, loss, backward,
/// optimizer step. Batches are drawn by a seeded shuffle; nothing is allocated per batch.
///
/// ```swift
/// let data = try FashionMNIST.load()
/// let net = try Chain(sizes: [784, 300, 100, 10], seed: 0)
/// let trainer = try Trainer(network: net, optimizer: SGD(learningRate: 0.05, momentum: 0.9), seed: 0)
/// let history = try trainer.fit(data, epochs: 15)
/// ```
public final class Trainer {
    /// The network being trained.
    let network: Chain
    /// The optimizer.
    let optimizer: Optimizer
    /// The loss.
    var loss: Loss
    /// The number of examples per batch.
    let batchSize: Int
    /// The seed of the shuffling; epoch `e` shuffles with a generator derived from `(seed, e)`,
    /// so a run resumed at epoch `e` draws the same batches.
    var seed: UInt64
    /// The learning rate the schedule multiplies.
    var baseLearningRate: Float
    /// The learning-rate schedule, evaluated at the fractional epoch before every step.
    public var schedule: LearningRateSchedule
    /// The number of epochs trained so far; the schedule and the shuffle use it.
    public var epochsCompleted: Int = 0
    private var workspace: Chain.Workspace

    /// Creates a trainer. The optimizer's current learning rate becomes `baseLearningRate`.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidOption`` for a batch size outside `1...1_000_000`.
    public init(network: Chain, optimizer: Optimizer, loss: Loss = .softmaxCrossEntropy,
                batchSize: Int = 128, seed: UInt64 = 0, schedule: LearningRateSchedule = .constant) throws {
        guard (1...1_000_000).contains(batchSize) else {
            throw TopiaryError(.invalidOption, "Trainer: the batch size must be between 1 and 1,000,000, got \(batchSize)")
        }
        self.network = network
        self.optimizer = optimizer
        self.loss = loss
        self.batchSize = batchSize
        self.seed = seed
        self.baseLearningRate = optimizer.learningRate
        self.schedule = schedule
        self.workspace = Chain.Workspace(for: network, batchCapacity: batchSize)
    }

    /// Trains one epoch over `data`.
    ///
    /// - Parameters:
    ///   - data: the training examples, each visited once, in batches of the trainer's batch size
    ///     (the last may be smaller) drawn by a shuffle seeded by the seed and the epoch.
    ///   - progress: called after every batch.
    ///   - afterStep: called after every optimizer step with the global step index (from 0);
    ///     gradual pruning inside training uses it.
    /// - Returns: the mean training loss and the seconds spent.
    /// - Throws: ``TopiaryError`` `.invalidShape` when the data's feature count differs from the
    ///   network's input size, `.invalidOption` for a label outside the network's classes,
    ///   `.nonFinite` when the loss becomes NaN or infinite.
    @discardableResult
    public func trainEpoch(_ data: LabeledData,
                           progress: ((TrainingProgress) -> Void)? = nil,
                           afterStep: ((Int) throws -> Void)? = nil) throws -> (loss: Double, seconds: Double) {
        try data.check(against: network, source: "Trainer: the training data")
        if !workspace.fits(network, batch: batchSize) {
            workspace = Chain.Workspace(for: network, batchCapacity: batchSize)
        }
        let clock = ContinuousClock()
        let start = clock.now
        var batches = Batches(data, batchSize: batchSize)
        var rng = SeededRandom(seed: seed ^ (UInt64(epochsCompleted + 1) &* 0x9E37_79B9_7F4A_7C15))
        batches.shuffle(using: &rng)
        let count = batches.batchCount
        let classes = network.outputSize
        var total = 0.0
        for index in 0..<count {
            optimizer.learningRate = baseLearningRate
                * Float(schedule(Double(epochsCompleted) + Double(index) / Double(count)))
            let batchLoss = batches.withBatch(index) { x, labels, n -> Double in
                let y = network.forward(x, batch: n, workspace: &workspace)
                let (l, _) = loss.evaluate(output: y, labels: labels, batch: n, classes: classes,
                                           gradient: workspace.outputGradient)
                network.backward(x, batch: n, workspace: &workspace)
                return l
            }
            guard batchLoss.isFinite else {
                throw TopiaryError(.nonFinite, "Training diverged: the loss became \(batchLoss) at epoch \(epochsCompleted + 1), batch \(index + 1); try a smaller learning rate.")
            }
            optimizer.step(network)
            total += batchLoss
            try afterStep?(epochsCompleted * count + index)
            if let progress {
                progress(TrainingProgress(epoch: epochsCompleted + 1, batchesDone: index + 1, batchCount: count,
                                          runningLoss: total / Double(index + 1),
                                          elapsed: (clock.now - start).seconds))
            }
        }
        epochsCompleted += 1
        return (total / Double(max(1, count)), (clock.now - start).seconds)
    }

    /// Trains `epochs` epochs, evaluating on the validation split (when not empty) and the test
    /// split after each. Returns one record per epoch.
    ///
    /// `onEpoch` sees the network exactly as it is at the end of the epoch, so it is where to keep
    /// the weights of chosen epochs (for rewinding, Frankle & Carbin 2019); the weights before the
    /// first epoch (epoch 0) are the network before `fit` is called:
    ///
    /// ```swift
    /// try Model(network: net, epoch: 0).save(to: "dense.epoch-0.safetensors")
    /// try trainer.fit(data, epochs: 15, onEpoch: { record in
    ///     if record.epoch == 1 { try Model(network: net, epoch: 1).save(to: "dense.epoch-1.safetensors") }
    /// })
    /// ```
    ///
    /// - Parameters:
    ///   - dataset: the data: each epoch trains on its `train` split, then evaluates on its
    ///     `validation` (when not empty) and `test` splits.
    ///   - epochs: the number of epochs to train, continuing from ``epochsCompleted``.
    ///   - progress: called after every batch.
    ///   - onEpoch: called after every epoch with its record; an error it throws stops training
    ///     and is rethrown.
    @discardableResult
    public func fit(_ dataset: Dataset, epochs: Int,
                    progress: ((TrainingProgress) -> Void)? = nil,
                    onEpoch: ((EpochRecord) throws -> Void)? = nil) throws -> [EpochRecord] {
        var history: [EpochRecord] = []
        for _ in 0..<epochs {
            let (trainLoss, seconds) = try trainEpoch(dataset.train, progress: progress)
            let val = dataset.validation.isEmpty ? nil : try network.evaluate(dataset.validation, loss: loss)
            let test = try network.evaluate(dataset.test, loss: loss)
            let record = EpochRecord(epoch: epochsCompleted, trainLoss: trainLoss, valLoss: val?.loss,
                                     valAccuracy: val?.accuracy, testAccuracy: test.accuracy, seconds: seconds)
            history.append(record)
            try onEpoch?(record)
        }
        return history
    }
}
