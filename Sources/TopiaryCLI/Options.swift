import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

/// Where the data comes from and how it is split.
struct DataOptions: ParsableArguments {
    @Option(help: "The dataset: fashion-mnist, or a path to your own: a NumPy .npz with x_train, y_train, x_test, y_test (uint8 or float inputs of any shape, integer labels), a folder of those four .npy files, or a folder of IDX files (MNIST, KMNIST, EMNIST layouts, raw or .gz).")
    var dataset: String = "fashion-mnist"

    @Option(name: .customLong("data-dir"),
            help: "With --dataset fashion-mnist: the folder with its IDX files (raw or .gz). Default: \(FashionMNIST.defaultDirectory) (apt-get install dataset-fashion-mnist).")
    var dataDirectory: String = FashionMNIST.defaultDirectory

    @Option(name: .customLong("validation"), help: "Training images held out for validation, taken from the end.")
    var validationCount: Int = 5000

    @Option(name: .customLong("train-limit"), help: "Use only the first N training images (quick runs).")
    var trainLimit: Int?

    @Option(name: .customLong("test-limit"), help: "Use only the first N test images (quick runs).")
    var testLimit: Int?

    func validate() throws {
        guard !dataset.isEmpty else { throw ValidationError("--dataset needs fashion-mnist or a path.") }
        if dataset != "fashion-mnist", !FileManager.default.fileExists(atPath: dataset) {
            throw ValidationError("--dataset \(dataset) does not exist: give fashion-mnist, a .npz file, or a folder of .npy or IDX files.")
        }
        guard validationCount >= 0 else { throw ValidationError("--validation must be at least 0.") }
        if let trainLimit, trainLimit < 1 { throw ValidationError("--train-limit must be at least 1.") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1.") }
    }

    /// Loads the dataset, standardised as `normalization` says (or computed from the training pixels).
    func load(standardize: Bool = true, normalization: Normalization? = nil, validationCount: Int? = nil) throws -> Dataset {
        let validationCount = validationCount ?? self.validationCount
        guard dataset != "fashion-mnist" else {
            return try FashionMNIST.load(directory: dataDirectory, validationCount: validationCount, standardize: standardize,
                                         trainLimit: trainLimit, testLimit: testLimit, normalization: normalization)
        }
        return try Dataset.load(contentsOf: dataset, validationCount: validationCount, standardize: standardize,
                                trainLimit: trainLimit, testLimit: testLimit, normalization: normalization)
    }

    /// Loads the dataset as the model `loaded` (from `path`) was trained, refusing a model whose
    /// input width or class count does not fit it. `validationCount` replaces `--validation`
    /// (`eval` holds nothing out: it reads the test split only).
    func load(for loaded: Model, path: String, validationCount: Int? = nil) throws -> Dataset {
        let data = try load(normalization: loaded.normalization, validationCount: validationCount)
        let network = loaded.network
        guard network.inputSize == data.train.images.columns, network.outputSize == data.classCount else {
            throw TopiaryError(.invalidShape, "\(path) maps \(network.inputSize) inputs to \(network.outputSize) outputs; \(dataset) has \(data.train.images.columns) inputs and \(data.classCount) classes.")
        }
        return data
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

/// What differs between the commands that share ``OptimizerOptions``: `train` trains from scratch
/// (learning rate 0.05, `--schedule`), `prune` fine-tunes (0.01, `--lr-schedule`, since its
/// `--schedule` is the pruning schedule).
protocol OptimizerDefaults {
    static var learningRate: Float { get }
    static var scheduleOption: String { get }
    static var scheduleHelp: String { get }
    static var seedHelp: String { get }
}

enum TrainingDefaults: OptimizerDefaults {
    static let learningRate: Float = 0.05
    static let scheduleOption = "schedule"
    static let scheduleHelp = "Learning-rate schedule: constant, cosine, or step:EVERY:GAMMA (e.g. step:5:0.1)."
    static let seedHelp = "The seed for initialisation and shuffling."
}

enum FineTuningDefaults: OptimizerDefaults {
    static let learningRate: Float = 0.01
    static let scheduleOption = "lr-schedule"
    static let scheduleHelp = "Fine-tuning learning-rate schedule: constant, cosine (over all fine-tuning epochs, or over each step's with --lr-rewind) or step:EVERY:GAMMA."
    static let seedHelp = "The seed for shuffling, random saliency and reinitialisation."
}

/// How to train or fine-tune: the optimizer, its learning-rate schedule, batches and seed.
struct OptimizerOptions<Defaults: OptimizerDefaults>: ParsableArguments {
    @Option(help: "The optimizer: sgd, nesterov, adam or adamw.")
    var optimizer: OptimizerSettings.Kind = .sgd

    @Option(help: "The learning rate.")
    var lr: Float = Defaults.learningRate

    @Option(help: "Momentum for sgd and nesterov.")
    var momentum: Float = 0.9

    @Option(name: .customLong("weight-decay"), help: "Weight decay (L2 for sgd/adam, decoupled for adamw).")
    var weightDecay: Float = 0

    @Option(name: .customLong("batch-size"), help: "Examples per batch.")
    var batchSize: Int = 128

    @Option(name: .customLong(Defaults.scheduleOption), help: ArgumentHelp(Defaults.scheduleHelp))
    var learningRateSchedule: LearningRateChoice = .constant

    @Option(help: ArgumentHelp(Defaults.seedHelp))
    var seed: UInt64 = 0

    func validate() throws {
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number.") }
        guard momentum.isFinite, (0..<1).contains(momentum) else { throw ValidationError("--momentum must be in [0, 1).") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw ValidationError("--weight-decay must be at least 0.") }
        guard (1...65536).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 65536.") }
    }

    /// The optimizer as a library value.
    var settings: OptimizerSettings {
        OptimizerSettings(optimizer, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
    }
}

extension OptimizerSettings.Kind: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}

/// A learning-rate schedule as the command line names it: constant, cosine or step:EVERY:GAMMA.
enum LearningRateChoice: ExpressibleByArgument, Equatable {
    case constant
    case cosine
    case step(every: Int, gamma: Double)

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch (parts.first, parts.count) {
        case ("constant", 1): self = .constant
        case ("cosine", 1): self = .cosine
        case ("step", 3):
            guard let every = Int(parts[1]), every > 0, let gamma = Double(parts[2]), gamma.isFinite, gamma > 0 else { return nil }
            self = .step(every: every, gamma: gamma)
        default: return nil
        }
    }

    var defaultValueDescription: String {
        switch self {
        case .constant: return "constant"
        case .cosine: return "cosine"
        case .step(let every, let gamma): return "step:\(every):\(gamma)"
        }
    }

    /// The schedule, a cosine spanning `epochs` epochs.
    func schedule(epochs: Int) -> LearningRateSchedule {
        switch self {
        case .constant: return .constant
        case .cosine: return .cosine(epochs: max(1, epochs))
        case .step(let every, let gamma): return .step(every: every, gamma: gamma)
        }
    }
}

/// Parses comma-separated fractions in [0, 1].
func parseFractions(_ text: String, option: String) throws -> [Double] {
    try parseList(text, option: option) { Double($0).flatMap { $0.isFinite && (0...1).contains($0) ? $0 : nil } }
}

/// The file `topiary train --save-epochs K` writes beside the model `path` and `prune --finetune
/// rewind:K` looks for: `<stem>.epoch-K.safetensors` in the same folder, the stem being the file
/// name without its extension (`runs/dense.safetensors` → `runs/dense.epoch-3.safetensors`).
func epochPath(for path: String, epoch: Int) -> String {
    let slash = path.lastIndex(of: "/")
    let nameStart = slash.map { path.index(after: $0) } ?? path.startIndex
    var stemEnd = path.endIndex
    if let dot = path[nameStart...].lastIndex(of: "."), dot > nameStart { stemEnd = dot }
    return String(path[..<stemEnd]) + ".epoch-\(epoch).safetensors"
}

/// Sizes joined by '-', input first: `784-300-100-10`.
func architecture(_ sizes: [Int]) -> String { sizes.map(String.init).joined(separator: "-") }

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
