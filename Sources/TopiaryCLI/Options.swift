import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

/// Where the data comes from and how it is split.
struct DataOptions: ParsableArguments {
    @Option(help: "The dataset. Only fashion-mnist for now.")
    var dataset: String = "fashion-mnist"

    @Option(name: .customLong("data-dir"),
            help: "The folder with the IDX files (raw or .gz). Default: \(FashionMNIST.defaultDirectory) (apt-get install dataset-fashion-mnist).")
    var dataDirectory: String = FashionMNIST.defaultDirectory

    @Option(name: .customLong("validation"), help: "Training images held out for validation, taken from the end.")
    var validationCount: Int = 5000

    @Option(name: .customLong("train-limit"), help: "Use only the first N training images (quick runs).")
    var trainLimit: Int?

    @Option(name: .customLong("test-limit"), help: "Use only the first N test images (quick runs).")
    var testLimit: Int?

    func validate() throws {
        guard dataset == "fashion-mnist" else {
            throw ValidationError("Unknown dataset '\(dataset)': the supported dataset is fashion-mnist.")
        }
        guard validationCount >= 0 else { throw ValidationError("--validation must be at least 0.") }
        if let trainLimit, trainLimit < 1 { throw ValidationError("--train-limit must be at least 1.") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1.") }
    }

    /// Loads the dataset, standardised as `normalization` says (or computed from the training pixels).
    func load(standardize: Bool = true, normalization: Normalization? = nil) throws -> Dataset {
        try FashionMNIST.load(directory: dataDirectory, validationCount: validationCount, standardize: standardize,
                              trainLimit: trainLimit, testLimit: testLimit, normalization: normalization)
    }
}

/// Threads and output format.
struct CommonOptions: ParsableArguments {
    @Option(help: "Threads for OpenBLAS and Topiary's kernels.")
    var threads: Int = min(2, ProcessInfo.processInfo.activeProcessorCount)

    @Flag(help: "Print one JSON object on standard output, and no progress.")
    var json = false

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256.") }
    }

    /// Applies the thread count.
    func apply() { Threads.count = threads }
}

/// How to train (or fine-tune).
struct OptimizerOptions: ParsableArguments {
    @Option(help: "sgd, nesterov, adam or adamw.")
    var optimizer: String = "sgd"

    @Option(help: "The learning rate.")
    var lr: Float = 0.05

    @Option(help: "Momentum for sgd and nesterov.")
    var momentum: Float = 0.9

    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for sgd/adam, decoupled for adamw).")
    var weightDecay: Float = 0

    @Option(name: .customLong("batch-size"), help: "Examples per batch.")
    var batchSize: Int = 128

    @Option(help: "Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA (e.g. step:5:0.1).")
    var schedule: String = "constant"

    @Option(help: "The seed for initialisation and shuffling.")
    var seed: UInt64 = 0

    func validate() throws {
        try validateOptimizerOptions(optimizer: optimizer, lr: lr, momentum: momentum, weightDecay: weightDecay, batchSize: batchSize)
        _ = try parseSchedule(epochs: 1)
    }

    func makeOptimizer(learningRate: Float? = nil) -> Optimizer {
        buildOptimizer(optimizer, learningRate: learningRate ?? lr, momentum: momentum, weightDecay: weightDecay)
    }

    func parseSchedule(epochs: Int) throws -> LearningRateSchedule {
        try parseLearningRateSchedule(schedule, epochs: epochs, option: "schedule")
    }
}

/// Checks the options shared by every command that trains (`train`, `prune`).
func validateOptimizerOptions(optimizer: String, lr: Float, momentum: Float, weightDecay: Float, batchSize: Int) throws {
    guard ["sgd", "nesterov", "adam", "adamw"].contains(optimizer) else {
        throw ValidationError("Unknown optimizer '\(optimizer)': use sgd, nesterov, adam or adamw.")
    }
    guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number.") }
    guard momentum.isFinite, (0..<1).contains(momentum) else { throw ValidationError("--momentum must be in [0, 1).") }
    guard weightDecay.isFinite, weightDecay >= 0 else { throw ValidationError("--weight-decay must be at least 0.") }
    guard (1...65536).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 65536.") }
}

/// The optimizer named `name` (sgd, nesterov, adam or adamw; validated by ``validateOptimizerOptions``).
func buildOptimizer(_ name: String, learningRate: Float, momentum: Float, weightDecay: Float) -> Optimizer {
    switch name {
    case "nesterov": return SGD(learningRate: learningRate, momentum: momentum, nesterov: true, weightDecay: weightDecay)
    case "adam": return Adam(learningRate: learningRate, weightDecay: weightDecay)
    case "adamw": return Adam.adamW(learningRate: learningRate, weightDecay: weightDecay)
    default: return SGD(learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
    }
}

/// Parses a learning-rate schedule: constant, cosine (over `epochs`) or step:EVERY:GAMMA; errors
/// name the option (`schedule`, `lr-schedule`).
func parseLearningRateSchedule(_ text: String, epochs: Int, option: String) throws -> LearningRateSchedule {
    let parts = text.split(separator: ":").map(String.init)
    switch parts.first {
    case "constant" where parts.count == 1: return .constant
    case "cosine" where parts.count == 1: return .cosine(epochs: max(1, epochs))
    case "step" where parts.count == 3:
        guard let every = Int(parts[1]), every > 0, let gamma = Double(parts[2]), gamma.isFinite, gamma > 0 else { break }
        return .step(every: every, gamma: gamma)
    default: break
    }
    throw ValidationError("Unknown --\(option) '\(text)': use constant, cosine or step:EVERY:GAMMA.")
}

/// Loads a model for Fashion-MNIST, refusing one that does not map 784 inputs to 10 classes.
func loadFashionMNISTModel(_ path: String) throws -> Model {
    let loaded = try Model.load(from: path)
    let network = loaded.network
    guard network.inputSize == FashionMNIST.featureCount, network.outputSize == FashionMNIST.classCount else {
        throw TopiaryError(.invalidShape, "\(path) maps \(network.inputSize) inputs to \(network.outputSize) outputs; fashion-mnist needs \(FashionMNIST.featureCount) → \(FashionMNIST.classCount).")
    }
    return loaded
}

/// Parses a comma-separated list, with a readable error naming the option.
func parseList<T>(_ text: String, option: String, _ parse: (String) -> T?) throws -> [T] {
    let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    guard !items.isEmpty else { throw ValidationError("\(option) needs at least one value.") }
    return try items.map { item in
        guard let value = parse(item) else { throw ValidationError("\(option): '\(item)' is not a valid value.") }
        return value
    }
}

/// Parses an architecture such as `784-300-100-10`, refusing more than 100,000,000 weights
/// (400 MB) before anything is allocated.
func parseArchitecture(_ text: String) throws -> [Int] {
    let sizes = text.split(separator: "-", omittingEmptySubsequences: false).compactMap { Int($0) }
    guard sizes.count >= 2, sizes.count == text.split(separator: "-", omittingEmptySubsequences: false).count,
          sizes.allSatisfy({ (1...(1 << 16)).contains($0) }) else {
        throw ValidationError("--arch must be sizes joined by '-', e.g. 784-300-100-10 (each 1...65536), got '\(text)'.")
    }
    let weights = zip(sizes, sizes.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 }
    guard weights <= 100_000_000 else {
        throw ValidationError("--arch \(text) has \(weights) weights; Topiary refuses more than 100,000,000 (400 MB).")
    }
    return sizes
}
