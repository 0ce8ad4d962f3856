import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a dense (unpruned) network and save it.",
        discussion: """
        Example (LeNet-300-100 on Fashion-MNIST, the reference recipe):
          topiary train --arch 784-300-100-10 --epochs 15 --batch-size 128 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 0 --output dense.safetensors
        """
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var common: CommonOptions
    @OptionGroup var training: OptimizerOptions<TrainingDefaults>

    @Option(help: "Layer sizes joined by '-', input first. Default: the data's input width, 300, 100, its class count (784-300-100-10 for fashion-mnist).")
    var arch: String?

    @Option(help: "Hidden-layer activation: relu, tanh, sigmoid or identity.")
    var activation: Activation = .relu

    @Option(help: "Training epochs.")
    var epochs: Int = 15

    @Flag(name: .customLong("no-standardize"), help: "Only scale pixels to [0, 1]; do not standardise with the training mean and deviation.")
    var noStandardize = false

    @Option(name: .shortAndLong, help: "Where to save the model (safetensors).")
    var output: String = "model.safetensors"

    @Option(name: .customLong("save-epochs"), help: "Also save the weights at the end of these epochs, comma-separated (0 = the initialisation, before any training), as <output stem>.epoch-K.safetensors next to --output; 'topiary prune --finetune rewind:K' finds them there.")
    var saveEpochs: String?

    func validate() throws {
        if let arch {
            let sizes = try parseArchitecture(arch)
            // Fashion-MNIST's sizes are known before loading it; other data is checked once loaded.
            if data.dataset == "fashion-mnist", sizes.first != FashionMNIST.featureCount || sizes.last != FashionMNIST.classCount {
                throw ValidationError("--arch must start with \(FashionMNIST.featureCount) inputs and end with \(FashionMNIST.classCount) outputs for fashion-mnist, got \(arch).")
            }
        }
        guard (1...10_000).contains(epochs) else { throw ValidationError("--epochs must be between 1 and 10000.") }
        _ = try parsedSaveEpochs()
    }

    /// The epochs of --save-epochs, each in 0...--epochs.
    func parsedSaveEpochs() throws -> Set<Int> {
        guard let saveEpochs else { return [] }
        let list = try parseList(saveEpochs, option: "--save-epochs") { Int($0).flatMap { (0...epochs).contains($0) ? $0 : nil } }
        return Set(list)
    }

    struct Report: Encodable {
        var architecture: String
        var parameters: Int
        var nonzero_parameters: Int
        var test_accuracy: Double
        var test_loss: Double
        /// `null` with `--validation 0`.
        @NullWhenNil var val_accuracy: Double?
        /// `null` with `--validation 0`.
        @NullWhenNil var val_loss: Double?
        /// Validation images; 0 with `--validation 0`, when the validation figures are `null`.
        var validation_count: Int
        var train_count: Int
        var epochs: [EpochRecord]
        var seconds_per_epoch: Double
        var threads: Int
        var output: String
        /// The files of --save-epochs, by increasing epoch.
        var epoch_files: [String]
    }

    func run() throws {
        let report = try execute(ConsoleOutput(json: common.json))
        if common.json {
            try printJSON(report)
        } else {
            print("test accuracy \(percent(report.test_accuracy)), test loss \(String(format: "%.4f", report.test_loss)), \(report.parameters) parameters; saved \(output)")
        }
    }

    /// Trains and saves the model, telling `out` what happens; the `--json` report.
    func execute(_ out: CommandOutput) throws -> Report {
        common.apply()
        let dataset = try data.load(standardize: !noStandardize)
        let arch = self.arch ?? "\(dataset.train.images.columns)-300-100-\(dataset.classCount)"
        let sizes = try parseArchitecture(arch)
        guard sizes.first == dataset.train.images.columns, sizes.last == dataset.classCount else {
            throw TopiaryError(.invalidOption, "--arch must start with \(dataset.train.images.columns) inputs and end with \(dataset.classCount) outputs for \(data.dataset), got \(arch).")
        }
        let schedule = training.learningRateSchedule.schedule(epochs: epochs)
        // Everything that changes the weights: `prune --finetune rewind:K` matches an epoch file to
        // the model by it, and rewind:0 rebuilds the initialisation from it.
        let recipe = TrainingRecipe(sizes: sizes, hiddenActivation: activation, optimizer: training.settings,
                                    learningRateSchedule: schedule.name, epochs: epochs, batchSize: training.batchSize,
                                    seed: training.seed, validationCount: data.validationCount, trainLimit: data.trainLimit,
                                    standardized: !noStandardize, threads: Threads.count)
        let network = try recipe.initialNetwork()
        let trainer = try Trainer(network: network, optimizer: training.settings.makeOptimizer(), batchSize: training.batchSize,
                              seed: training.seed, schedule: schedule)
        let saveEpochs = try parsedSaveEpochs()
        var epochFiles: [String] = []
        /// Saves the weights as they are now, at the end of `epoch`, if --save-epochs asks for it.
        func saveEpoch(_ epoch: Int) throws {
            guard saveEpochs.contains(epoch) else { return }
            let path = epochPath(for: output, epoch: epoch)
            try Model(network: network, normalization: dataset.normalization, recipe: recipe, epoch: epoch).save(to: path)
            epochFiles.append(path)
            out.say("saved the weights of epoch \(epoch) to \(path)")
        }
        try saveEpoch(0)
        let history = try trainer.fit(dataset, epochs: epochs, progress: { p in
            out.progress("epoch \(p.epoch)/\(epochs)", done: p.batchesDone, total: p.batchCount, elapsed: p.elapsed,
                         detail: String(format: "loss %.4f", p.runningLoss),
                         fraction: (Double(p.epoch - 1) + Double(p.batchesDone) / Double(max(1, p.batchCount))) / Double(epochs))
        }, onEpoch: { r in
            out.endProgress()
            out.say(String(format: "epoch %2d/%d  train loss %.4f  val acc %@  test acc %@  %.2f s",
                           r.epoch, epochs, r.trainLoss, percentOrNotApplicable(r.valAccuracy), percent(r.testAccuracy), r.seconds))
            try saveEpoch(r.epoch)
        })
        let model = Model(network: network, normalization: dataset.normalization, recipe: recipe)
        try model.save(to: output)
        let test = try network.evaluate(dataset.test)
        let val = dataset.validation.isEmpty ? nil : try network.evaluate(dataset.validation)
        return Report(architecture: arch, parameters: network.parameterCount,
                            nonzero_parameters: network.nonzeroParameterCount, test_accuracy: test.accuracy,
                            test_loss: test.loss, val_accuracy: val?.accuracy, val_loss: val?.loss,
                            validation_count: dataset.validation.count, train_count: dataset.train.count, epochs: history,
                            seconds_per_epoch: history.map(\.seconds).reduce(0, +) / Double(max(1, history.count)),
                            threads: Threads.count, output: output, epoch_files: epochFiles)
    }
}
