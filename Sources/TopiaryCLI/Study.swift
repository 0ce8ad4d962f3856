import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary
import TopiaryBenchmarking

/// A recipe's study in its folder: the dense models (one per seed, cached by a hash of what
/// trains them), then a grid of steps (sensitivity per seed, methods × seeds × targets, the
/// crossover sweep), each saved under `cells/` when it finishes, so that a run resumes after
/// its last finished step and shards of the grid can run as separate processes.
///
/// Every step runs the same code as the command it names (`topiary train`, `sensitivity`,
/// `prune`, `bench --model`), parsed from the arguments it records, so the report and the
/// individual commands agree.
final class Study {
    /// One step of the grid.
    enum Cell: Equatable {
        case sensitivity(seed: UInt64)
        /// A method on a seed, to one target or (geometric) to all as milestones.
        case prune(method: Int, seed: UInt64, targets: [Double])
        case crossover(seed: UInt64)
    }

    /// What a finished step leaves in `cells/ID.json`.
    struct CellFile: Codable {
        var id: String
        /// The step's full description (its arguments): a file whose spec differs is stale.
        var spec: String
        var sensitivity: SensitivityResult?
        var run: MethodRun?
        var results: [PrunedResult]?
        var crossover: Crossover?
    }

    let recipe: Recipe
    let directory: String
    /// A hash of the recipe's parsed content: names what it determines.
    let hash: String
    let cells: [Cell]

    init(recipe: Recipe, directory: String) {
        self.recipe = recipe
        self.directory = directory
        hash = fnv1a(String(describing: recipe))
        var cells: [Cell] = []
        if recipe.sensitivityArguments != nil { cells += recipe.seeds.map { .sensitivity(seed: $0) } }
        for (m, method) in recipe.methods.enumerated() {
            for seed in recipe.seeds {
                if method.milestones {
                    cells.append(.prune(method: m, seed: seed, targets: method.targets))
                } else {
                    cells += method.targets.map { .prune(method: m, seed: seed, targets: [$0]) }
                }
            }
        }
        if let first = recipe.seeds.first, !recipe.benchSparsities.isEmpty { cells.append(.crossover(seed: first)) }
        self.cells = cells
    }

    // MARK: Names and arguments

    func path(_ relative: String) -> String { directory + "/" + relative }

    /// The dense model of `seed`, relative to the folder; its name carries a hash of what trains it.
    func denseModel(seed: UInt64) -> String { "dense/dense-s\(seed)-\(fnv1a(trainArguments(seed: seed, output: "").joined(separator: "\u{1}")).prefix(8)).safetensors" }

    func id(_ cell: Cell) -> String {
        switch cell {
        case .sensitivity(let seed): return "sensitivity-s\(seed)"
        case .crossover(let seed): return "crossover-s\(seed)"
        case .prune(let m, let seed, let targets):
            let name = recipe.methods[m].name
            return targets.count > 1 ? "prune-\(name)-s\(seed)" : "prune-\(name)-s\(seed)-\(percentName(targets[0]))"
        }
    }

    func modelName(method: String, seed: UInt64, target: Double) -> String { "models/\(method)-s\(seed)-\(percentName(target)).safetensors" }

    func trainArguments(seed: UInt64, output: String) -> [String] {
        recipe.dataArguments + recipe.trainingArguments + threadArguments(recipe.trainingArguments) + ["--seed", "\(seed)"]
            + (output.isEmpty ? [] : ["--output", output])
    }

    /// `--threads` of the training section unless `section` sets its own.
    private func threadArguments(_ section: [String]) -> [String] {
        section.contains("--threads") ? [] : ["--threads", "\(recipe.threads)"]
    }

    func sensitivityArguments(seed: UInt64, model: String) -> [String] {
        recipe.dataArguments + (recipe.sensitivityArguments ?? []) + ["--threads", "\(recipe.threads)", "--seed", "\(seed)", "--model", model]
    }

    /// `topiary prune` arguments of a cell, with paths under `base` (the folder, or "" for relative ones).
    func pruneArguments(method m: Int, seed: UInt64, targets: [Double], base: String) -> [String] {
        let method = recipe.methods[m]
        let dense = base + denseModel(seed: seed)
        var args = recipe.dataArguments + method.arguments + threadArguments(method.arguments) + ["--seed", "\(seed)", "--model", dense]
        if targets.count > 1 || method.milestones {
            args += ["--milestones", targets.map { "\($0)" }.joined(separator: ","),
                     "--milestone-output", base + "models/\(method.name)-s\(seed)-{sparsity}.safetensors",
                     "--output", base + modelName(method: method.name, seed: seed, target: targets.max() ?? 0)]
        } else {
            args += ["--target", "\(targets[0])", "--output", base + modelName(method: method.name, seed: seed, target: targets[0])]
        }
        return args
    }

    func spec(_ cell: Cell) -> String {
        switch cell {
        case .sensitivity(let seed): return sensitivityArguments(seed: seed, model: denseModel(seed: seed)).joined(separator: " ")
        case .prune(let m, let seed, let targets): return pruneArguments(method: m, seed: seed, targets: targets, base: "").joined(separator: " ")
        case .crossover(let seed):
            return "crossover \(denseModel(seed: seed)) sparsity \(recipe.benchSparsities) batch \(recipe.benchBatches) threads \(recipe.benchThreads)"
        }
    }

    /// The seeds whose dense model `cells` need.
    func seeds(of cells: [Cell]) -> [UInt64] {
        let needed = Set(cells.map { cell -> UInt64 in
            switch cell {
            case .sensitivity(let s), .crossover(let s), .prune(_, let s, _): return s
            }
        })
        return recipe.seeds.filter(needed.contains)
    }

    /// The cells of shard `index` (from 1) of `count`: every count-th cell of the grid.
    func cells(shard index: Int, of count: Int) -> [Cell] {
        cells.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }

    // MARK: Running

    /// Creates the folder and its parts.
    func prepareFolder() throws {
        for sub in ["", "/dense", "/cells", "/models", "/logs", "/plots"] {
            do {
                try FileManager.default.createDirectory(atPath: directory + sub, withIntermediateDirectories: true)
            } catch {
                throw TopiaryError(.writeFailed, "Cannot create the folder \(directory + sub): \(error.localizedDescription)")
            }
        }
    }

    /// The dense model of `seed`: read from the folder when a run with the same training
    /// arguments left it there, else trained (deterministic: shards that race write the same bits).
    func dense(seed: UInt64, out: CommandOutput) throws -> (result: DenseResult, reused: Bool) {
        let model = denseModel(seed: seed)
        let json = path(model.replacingOccurrences(of: ".safetensors", with: ".json"))
        if FileManager.default.fileExists(atPath: path(model)), let data = FileManager.default.contents(atPath: json),
           let cached = try? JSONDecoder().decode(DenseResult.self, from: data), cached.model == model {
            return (cached, true)
        }
        let train = try Train.parse(trainArguments(seed: seed, output: path(model)))
        let report = try train.execute(out)
        var epochs = [CurvePoint]()
        for r in report.epochs {
            epochs.append(CurvePoint(epoch: r.epoch, sparsity: 0, train_loss: r.trainLoss, val_accuracy: r.valAccuracy, test_accuracy: r.testAccuracy))
        }
        let result = DenseResult(seed: seed, architecture: report.architecture, parameters: report.parameters,
                                 test_accuracy: report.test_accuracy, val_accuracy: report.val_accuracy, model: model,
                                 file_bytes: fileSize(path(model)),
                                 command: Recipe.commandLine("train", trainArguments(seed: seed, output: model)),
                                 epochs: epochs, timing: .init(seconds: report.epochs.map(\.seconds).reduce(0, +), seconds_per_epoch: report.seconds_per_epoch))
        try write(result, to: json)
        return (result, false)
    }

    /// A finished cell's saved result, when it matches the cell's spec.
    func saved(_ cell: Cell) -> CellFile? {
        guard let data = FileManager.default.contents(atPath: path("cells/\(id(cell)).json")),
              let file = try? JSONDecoder().decode(CellFile.self, from: data), file.spec == spec(cell) else { return nil }
        return file
    }

    /// Runs one cell and saves its result.
    func run(_ cell: Cell, dense: [UInt64: DenseResult], out: CommandOutput) throws -> CellFile {
        var file = CellFile(id: id(cell), spec: spec(cell))
        switch cell {
        case .sensitivity(let seed):
            let command = try Sensitivity.parse(sensitivityArguments(seed: seed, model: path(denseModel(seed: seed))))
            let curves = try command.execute(out).curves
            file.sensitivity = SensitivityResult(
                seed: seed, command: Recipe.commandLine("sensitivity", sensitivityArguments(seed: seed, model: denseModel(seed: seed))),
                baseline_val_accuracy: curves.baselineAccuracy,
                layers: curves.layers.map { .init(layer: $0.layer, weights: $0.weights, points: $0.points.map { .init(sparsity: $0.sparsity, val_accuracy: $0.accuracy) }) })
        case .prune(let m, let seed, let targets):
            guard let denseResult = dense[seed] else { throw TopiaryError(.invalidOption, "no dense model for seed \(seed)") }
            (file.run, file.results) = try prune(method: m, seed: seed, targets: targets, dense: denseResult, out: out)
        case .crossover(let seed):
            file.crossover = try crossover(seed: seed, out: out)
        }
        try write(file, to: path("cells/\(file.id).json"))
        return file
    }

    private func prune(method m: Int, seed: UInt64, targets: [Double], dense: DenseResult, out: CommandOutput) throws -> (MethodRun, [PrunedResult]) {
        let method = recipe.methods[m]
        let command = try Prune.parse(pruneArguments(method: m, seed: seed, targets: targets, base: directory + "/"))
        let report = try command.execute(out)
        var curve = [CurvePoint(epoch: 0, sparsity: 0, train_loss: nil, val_accuracy: dense.val_accuracy, test_accuracy: dense.test_accuracy)]
        var epochs = 0
        for r in report.steps {
            epochs += r.epochs
            curve.append(CurvePoint(epoch: epochs, sparsity: r.sparsity, train_loss: nil, val_accuracy: r.valAccuracy, test_accuracy: r.testAccuracy))
        }
        let run = MethodRun(method: method.name, seed: seed, targets: targets,
                            command: Recipe.commandLine("prune", pruneArguments(method: m, seed: seed, targets: targets, base: "")),
                            total_epochs: report.total_epochs, curve: curve, timing: .init(seconds: report.seconds))
        let denseNetwork = try Model.load(from: path(dense.model)).network
        var results: [PrunedResult] = []
        for target in targets {
            let accuracy: (test: Double, val: Double?)
            if targets.count > 1 || method.milestones {
                guard let milestone = report.milestones.first(where: { abs($0.target_sparsity - target) < 1e-9 }) else {
                    throw TopiaryError(.invalidOption, "\(method.name): the run reported no milestone at \(target)")
                }
                accuracy = (milestone.test_accuracy, milestone.val_accuracy)
            } else {
                accuracy = (report.final.testAccuracy, report.final.valAccuracy)
            }
            let model = modelName(method: method.name, seed: seed, target: target)
            let network = try Model.load(from: path(model)).network
            out.say("benchmarking \(model)")
            results.append(try measure(network, against: denseNetwork, denseFile: dense.model, method: method, seed: seed, target: target, accuracy: accuracy,
                                       denseAccuracy: dense.test_accuracy, model: model))
        }
        return (run, results)
    }

    /// The figures of one pruned model: sizes, sparsity per layer, bytes, and its speed against
    /// the dense model (`topiary bench --model` measures the same three paths).
    private func measure(_ network: Chain, against dense: Chain, denseFile: String, method: Recipe.Method, seed: UInt64, target: Double,
                         accuracy: (test: Double, val: Double?), denseAccuracy: Double, model: String) throws -> PrunedResult {
        let denseWeights = dense.layers.map { $0.weight.count }
        let kept = network.layers.map { layer in layer.weight.storage.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }
        let layerSparsity = zip(kept, denseWeights).map { 1 - Double($0) / Double(max(1, $1)) }
        let keptTotal = kept.reduce(0, +), denseTotal = denseWeights.reduce(0, +)
        let bench = try benchmark(network)
        let denseBench = try denseSpeed(dense, file: denseFile)
        let points = zip(bench, denseBench).map { r, d in
            BenchPoint(batch: r.batch, threads: r.threads, masked_samples_per_s: r.denseSamplesPerSecond,
                       compressed_samples_per_s: r.compiledSamplesPerSecond, dense_samples_per_s: d.denseSamplesPerSecond,
                       us_per_sample: r.microsecondsPerSample, speedup: r.compiledSamplesPerSecond / d.denseSamplesPerSecond,
                       speedup_over_masked: r.compiledSamplesPerSecond / r.denseSamplesPerSecond, layers: r.layers)
        }
        return PrunedResult(method: method.name, seed: seed, structured: method.structured, target: target,
                            weight_sparsity: 1 - Double(keptTotal) / Double(max(1, denseTotal)),
                            test_accuracy: accuracy.test, val_accuracy: accuracy.val, dense_test_accuracy: denseAccuracy,
                            sizes: network.sizes, parameters: network.parameterCount, nonzero_parameters: network.nonzeroParameterCount,
                            dense_parameters: dense.parameterCount, layer_sparsity: layerSparsity,
                            flop_reduction: Double(denseTotal) / Double(max(1, keptTotal)), model: model,
                            file_bytes: fileSize(path(model)), timing: .init(bench: points))
    }

    private func benchmark(_ network: Chain) throws -> [SparseBenchmark.NetworkResult] {
        try SparseBenchmark.network(network, batches: recipe.benchBatches, threads: recipe.benchThreads, secondsPerCase: 0.2)
    }

    /// The dense models' speed by file, measured once per process.
    private var denseSpeeds: [String: [SparseBenchmark.NetworkResult]] = [:]
    private func denseSpeed(_ dense: Chain, file: String) throws -> [SparseBenchmark.NetworkResult] {
        if let speeds = denseSpeeds[file] { return speeds }
        let speeds = try benchmark(dense)
        denseSpeeds[file] = speeds
        return speeds
    }

    private func crossover(seed: UInt64, out: CommandOutput) throws -> Crossover {
        let dense = try Model.load(from: path(denseModel(seed: seed))).network
        var points: [Crossover.Point] = []
        for (i, s) in recipe.benchSparsities.enumerated() {
            out.progress("crossover", done: i, total: recipe.benchSparsities.count, elapsed: 0, detail: "sparsity \(percent(s))")
            let net = dense.copy()
            try Pruner(saliency: .magnitude, scope: .global).prune(net, to: s)
            for r in try benchmark(net) {
                points.append(.init(sparsity: s, batch: r.batch, threads: r.threads, masked_samples_per_s: r.denseSamplesPerSecond,
                                    csr_samples_per_s: r.sparseSamplesPerSecond, speedup: r.sparseSamplesPerSecond / r.denseSamplesPerSecond))
            }
        }
        out.endProgress()
        return Crossover(seed: seed, sparsities: recipe.benchSparsities, timing: .init(points: points, crossovers: Crossover.crossovers(points)))
    }

    // MARK: Results

    /// Gathers the results of every cell from `folders` (this study's first); throws naming the
    /// cells that none of them holds.
    func results(folders: [String]) throws -> StudyResults {
        var files: [String: CellFile] = [:]
        var missing: [String] = []
        for cell in cells {
            let name = "cells/\(id(cell)).json"
            let found = folders.lazy.compactMap { folder -> CellFile? in
                guard let data = FileManager.default.contents(atPath: folder + "/" + name),
                      let file = try? JSONDecoder().decode(CellFile.self, from: data), file.spec == self.spec(cell) else { return nil }
                return file
            }.first
            if let found { files[id(cell)] = found } else { missing.append(id(cell)) }
        }
        guard missing.isEmpty else {
            throw TopiaryError(.fileNotFound, "The study \(recipe.name) is incomplete: \(missing.count) of \(cells.count) steps have no result in \(folders.joined(separator: ", ")) (\(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", …" : "")); run the missing shards, or topiary run --resume.")
        }
        var dense: [DenseResult] = []
        for seed in recipe.seeds {
            let name = denseModel(seed: seed).replacingOccurrences(of: ".safetensors", with: ".json")
            guard let data = folders.lazy.compactMap({ FileManager.default.contents(atPath: $0 + "/" + name) }).first else {
                throw TopiaryError(.fileNotFound, "No dense model of seed \(seed) (\(name)) in \(folders.joined(separator: ", ")).")
            }
            do { dense.append(try JSONDecoder().decode(DenseResult.self, from: data)) } catch {
                throw TopiaryError(.corruptFile, "\(name): \(error.localizedDescription)")
            }
        }
        let ordered = cells.compactMap { files[id($0)] }
        let results = ordered.flatMap { $0.results ?? [] }
        return StudyResults(
            study: StudyInfo(name: recipe.name, description: recipe.description, recipe_hash: hash, seeds: recipe.seeds, threads: Threads.usable(recipe.threads),
                             methods: recipe.methods.map { MethodInfo(name: $0.name, arguments: $0.arguments, targets: $0.targets, structured: $0.structured) },
                             bench_batches: recipe.benchBatches, bench_threads: SparseBenchmark.usableThreads(recipe.benchThreads)),
            environment: .current(), dense: dense, sensitivity: ordered.compactMap(\.sensitivity), runs: ordered.compactMap(\.run),
            results: results, summary: summarize(results), crossover: ordered.compactMap(\.crossover).first)
    }

    private func summarize(_ results: [PrunedResult]) -> [SummaryRow] {
        var rows: [SummaryRow] = []
        for method in recipe.methods {
            for target in method.targets {
                let group = results.filter { $0.method == method.name && $0.target == target }
                guard !group.isEmpty else { continue }
                let n = Double(group.count)
                let accuracies = group.map(\.test_accuracy)
                let mean = accuracies.reduce(0, +) / n
                let std = group.count > 1 ? (accuracies.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / (n - 1)).squareRoot() : 0
                rows.append(SummaryRow(method: method.name, target: target, seeds: group.count,
                                       weight_sparsity: group.map(\.weight_sparsity).reduce(0, +) / n,
                                       test_accuracy_mean: mean, test_accuracy_std: std,
                                       dense_test_accuracy_mean: group.map(\.dense_test_accuracy).reduce(0, +) / n,
                                       nonzero_parameters: group[0].nonzero_parameters, file_bytes: group[0].file_bytes,
                                       flop_reduction: group.map(\.flop_reduction).reduce(0, +) / n))
            }
        }
        return rows
    }
}

/// `0.95` → `95.0`: a sparsity in file names.
func percentName(_ fraction: Double) -> String { String(format: "%.1f", 100 * fraction) }

/// The size of a file in bytes (0 when it cannot be read).
func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}

/// Writes a value as pretty JSON, atomically.
func write<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    try writeFileAtomically(Array(try encoder.encode(value)) + [10], to: path)
}

/// FNV-1a, 64 bits, as 16 hex digits: a stable hash (Swift's `Hasher` is seeded per process).
func fnv1a(_ text: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        h ^= UInt64(byte)
        h = h &* 0x0000_0100_0000_01b3
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
