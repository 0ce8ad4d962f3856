import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole study from a recipe: train, prune with every method, compress, benchmark, and write a report with plots.",
        discussion: """
        Without a recipe, runs the built-in study (recipes/default.yaml): LeNet-300-100 on \
        Fashion-MNIST, global magnitude pruning (geometric and AGP), layerwise, sensitivity-guided \
        and structured (half the neurons), to 90, 95 and 98%, every final model benchmarked \
        dense-masked against compressed. The folder then holds report.md, results.json, plots/*.svg, \
        the models, and one file per finished step (cells/), from which --resume carries on.

        Examples:
          The default study, into topiary-default/:  topiary run
          A smoke study (about a minute):  topiary run recipes/quick.yaml --output quick
          One task of a job array of 8:  topiary run recipes/lenet-300-100-study.yaml --shard 2/8 --output study
          Merge the shards into one report:  topiary report study
        """
    )

    @Argument(help: "The recipe (YAML). Default: the built-in study, as recipes/default.yaml.")
    var recipe: String?

    @Option(name: .shortAndLong, help: "The study's folder. Default: the recipe's 'output'.")
    var output: String?

    @Flag(help: "Carry on an interrupted run: skip the steps whose results the folder holds.")
    var resume = false

    @Option(help: "Run only part I of N of the grid (methods × seeds × targets), e.g. 2/8; shards share the folder; 'topiary report DIR' merges them.")
    var shard: String?

    @Flag(help: "Only train the dense models (one per seed), for the shards of a job array to share.")
    var prepare = false

    @Flag(help: "Print the results object (results.json) on standard output, and no progress.")
    var json = false

    func validate() throws {
        _ = try parsedShard()
        if prepare, shard != nil { throw ValidationError("--prepare trains the dense models for all shards; do not combine it with --shard.") }
    }

    func parsedShard() throws -> (index: Int, count: Int)? {
        guard let shard else { return nil }
        let parts = shard.split(separator: "/").map { Int($0) }
        guard parts.count == 2, let i = parts[0], let n = parts[1], n >= 1, n <= 100_000, (1...n).contains(i) else {
            throw ValidationError("--shard must be I/N with 1 ≤ I ≤ N, e.g. 2/8; got '\(shard)'.")
        }
        return (i, n)
    }

    func run() throws {
        let (recipe, text, source) = try loadRecipe()
        let folder = output ?? recipe.output
        let study = Study(recipe: recipe, directory: folder)
        try study.prepareFolder()
        let recipeCopy = study.path("recipe.yaml")
        if resume, let old = try? String(contentsOfFile: recipeCopy, encoding: .utf8), old != text,
           (try? Study(recipe: Recipe(yaml: old, file: recipeCopy), directory: folder).hash) != study.hash {
            throw TopiaryError(.invalidOption, "\(folder) holds another study (its recipe.yaml differs from \(source)): drop --resume to start over there, or choose another --output.")
        }
        try writeFileAtomically(Array(text.utf8), to: recipeCopy)

        let shard = try parsedShard()
        let cells = prepare ? [] : shard.map { study.cells(shard: $0.index, of: $0.count) } ?? study.cells
        let seeds = prepare ? recipe.seeds : study.seeds(of: cells)
        let progress = StudyProgress(json: json, study: study, seeds: seeds, cells: cells)
        if !json {
            let part = shard.map { " (shard \($0.index)/\($0.count): \(cells.count) of \(study.cells.count) steps)" } ?? ""
            print("study \(recipe.name) from \(source) into \(folder)/\(part): \(seeds.count) dense model(s), \(cells.count) step(s)")
        }
        var dense: [UInt64: DenseResult] = [:]
        for seed in seeds {
            progress.begin("train dense model, seed \(seed)", log: study.path("logs/dense-s\(seed).log"))
            let (result, reused) = try study.dense(seed: seed, out: progress)
            dense[seed] = result
            progress.secondsPerEpoch = result.timing.seconds_per_epoch
            progress.end(reused ? "reused \(result.model) (same training recipe): test accuracy \(percent(result.test_accuracy))"
                                : "test accuracy \(percent(result.test_accuracy)), \(result.model)")
        }
        for cell in cells {
            progress.begin(label(cell, study: study), log: study.path("logs/\(study.id(cell)).log"))
            if resume, let saved = study.saved(cell) {
                progress.end("done before: " + summary(saved), skipped: true)
                continue
            }
            let file = try study.run(cell, dense: dense, out: progress)
            progress.end(summary(file))
        }
        progress.close()
        if prepare {
            if !json { print("dense models ready in \(folder)/dense; now run the shards: topiary run \(source) --output \(folder) --shard I/N") }
            return
        }
        if let shard {
            if !json { print("shard \(shard.index)/\(shard.count) done; when every shard is: topiary report \(folder)") }
            if json { printError("shard \(shard.index)/\(shard.count) done") }
            return
        }
        let results = try study.results(folders: [folder])
        try StudyReport(results: results, study: study).write(to: folder)
        if json {
            FileHandle.standardOutput.write(try results.json())
            FileHandle.standardOutput.write(Data("\n".utf8))
        } else {
            print(StudyReport.headline(results))
            print("report: \(folder)/report.md (results.json, plots/*.svg, models/ beside it)")
        }
    }

    /// The recipe, its text and where it came from.
    func loadRecipe() throws -> (Recipe, String, String) {
        guard let path = recipe else {
            return (try Recipe(yaml: DefaultRecipe.text, file: "recipes/default.yaml (built in)"), DefaultRecipe.text, "the built-in default study")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw TopiaryError(.fileNotFound, "Cannot read the recipe \(path).")
        }
        return (try Recipe(yaml: text, file: path), text, path)
    }

    private func label(_ cell: Study.Cell, study: Study) -> String {
        switch cell {
        case .sensitivity(let seed): return "sensitivity analysis, seed \(seed)"
        case .crossover(let seed): return "crossover sweep (one-shot magnitude, seed \(seed))"
        case .prune(let m, let seed, let targets):
            return "prune \(study.recipe.methods[m].name), seed \(seed), to \(targets.map { percent($0) }.joined(separator: "/"))"
        }
    }

    private func summary(_ file: Study.CellFile) -> String {
        if let r = file.results {
            return r.map { "\(percent($0.weight_sparsity)) → test \(percent($0.test_accuracy))" }.joined(separator: ", ")
        }
        if let s = file.sensitivity { return "\(s.layers.count) layers × \(s.layers.first?.points.count ?? 0) sparsities" }
        if let c = file.crossover {
            return c.timing.crossovers.map { "B=\($0.batch) T=\($0.threads): \($0.sparsity.map { percent($0) } ?? "none")" }.joined(separator: ", ")
        }
        return ""
    }
}

/// `topiary report DIR...`: merges the results of a study's shards into one report.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a study's report from its folder(s): merges the shards of 'topiary run --shard'.",
        discussion: """
        Reads the recipe from the first folder, finds every step's result in the folders (shards \
        may share one folder or have one each), and writes report.md, results.json and plots/ \
        into --output (default: the first folder). Refuses an incomplete study, naming the missing steps.
        """
    )

    @Argument(help: "The study folder(s).")
    var folders: [String]

    @Option(name: .shortAndLong, help: "Where to write the report. Default: the first folder.")
    var output: String?

    @Flag(help: "Print the results object (results.json) on standard output.")
    var json = false

    func validate() throws {
        guard !folders.isEmpty else { throw ValidationError("Name at least one study folder.") }
    }

    func run() throws {
        let first = folders[0]
        let recipePath = first + "/recipe.yaml"
        guard let text = try? String(contentsOfFile: recipePath, encoding: .utf8) else {
            throw TopiaryError(.fileNotFound, "\(first) is not a study folder: it has no recipe.yaml (topiary run writes one).")
        }
        let destination = output ?? first
        let study = Study(recipe: try Recipe(yaml: text, file: recipePath), directory: destination)
        for folder in folders.dropFirst() {
            if let other = try? String(contentsOfFile: folder + "/recipe.yaml", encoding: .utf8),
               (try? Study(recipe: Recipe(yaml: other, file: folder), directory: folder).hash) != study.hash {
                throw TopiaryError(.invalidOption, "\(folder) holds another study than \(first) (their recipe.yaml differ).")
            }
        }
        let results = try study.results(folders: folders)
        try study.prepareFolder()
        if destination != first { try writeFileAtomically(Array(text.utf8), to: destination + "/recipe.yaml") }
        try StudyReport(results: results, study: study).write(to: destination)
        if json {
            FileHandle.standardOutput.write(try results.json())
            FileHandle.standardOutput.write(Data("\n".utf8))
        } else {
            print(StudyReport.headline(results))
            print("report: \(destination)/report.md")
        }
    }
}

/// The progress of a study: finished steps as lines, and on a terminal a live line with the
/// current step, its progress and the whole run's ETA; each step's own lines go to its log file.
final class StudyProgress: CommandOutput {
    private let json: Bool
    private let live: Bool
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var stepStart: ContinuousClock.Instant
    private var log: FileHandle?
    private var label = ""
    private var index = 0
    private let count: Int
    private var lastDraw = -1.0
    /// The steps' weights in epochs of training; the ETA scales the time so far by the weight left.
    private var weights: [Double] = []
    private var fraction = 0.0
    private let study: Study
    private let seedCount: Int
    private let cells: [Study.Cell]
    /// Seconds per training epoch, to weigh benchmarks; measured once a dense model exists.
    var secondsPerEpoch = 1.5 {
        didSet { weights = Array(repeating: denseWeight, count: seedCount) + cells.map(weight) }
    }

    init(json: Bool, study: Study, seeds: [UInt64], cells: [Study.Cell]) {
        self.json = json
        self.study = study
        self.cells = cells
        seedCount = seeds.count
        live = !json && isatty(STDERR_FILENO) != 0
        start = clock.now
        stepStart = start
        count = seeds.count + cells.count
        weights = Array(repeating: denseWeight, count: seeds.count) + cells.map(weight)
    }

    var denseWeight: Double { Double((try? Train.parse(study.trainArguments(seed: 0, output: "x")).epochs) ?? 15) }

    /// An estimate of a step's cost in training epochs.
    func weight(_ cell: Study.Cell) -> Double {
        let benchSeconds = Double(study.recipe.benchBatches.count * study.recipe.benchThreads.count) * 0.2 * 3 * 1.3
        switch cell {
        case .sensitivity: return 1
        case .crossover: return Double(study.recipe.benchSparsities.count) * benchSeconds / secondsPerEpoch
        case .prune(let m, _, let targets):
            guard let p = try? Prune.parse(study.pruneArguments(method: m, seed: 0, targets: targets, base: "")) else { return 1 }
            let (per, final) = (Double(p.fineTune.finetuneEpochs), Double(p.fineTune.finalEpochs))
            let top = targets.max() ?? 0.9
            let steps: Double
            switch p.schedule.schedule {
            case .oneshot: steps = 1
            case .geometric: steps = (Foundation.log(max(1e-6, 1 - top)) / Foundation.log(max(1e-6, 1 - p.schedule.stepFraction))).rounded(.up)
            case .agp: steps = p.schedule.inTraining ? 1 : Double(p.schedule.steps)
            case .list(let l): steps = Double(l.count)
            }
            return steps * per + Double(targets.count) * final + Double(targets.count) * benchSeconds / secondsPerEpoch + 0.5
        }
    }

    func begin(_ label: String, log path: String) {
        index += 1
        self.label = "[\(index)/\(count)] " + label
        fraction = 0
        stepStart = clock.now
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        log = FileHandle(forWritingAtPath: path)
        draw(detail: "", force: true)
    }

    func end(_ line: String, skipped: Bool = false) {
        clearLine()
        let seconds = (clock.now - stepStart).seconds
        if !json { print("\(label): \(line)\(skipped ? "" : String(format: " (%.1f s)", seconds))"); fflush(stdout) }
        try? log?.close()
        log = nil
        fraction = 0
    }

    func close() { clearLine() }

    func say(_ line: String) { log?.write(Data((line + "\n").utf8)) }

    func progress(_ phase: String, done: Int, total: Int, elapsed: Double, detail: String, fraction stepFraction: Double?) {
        if let stepFraction { fraction = min(1, max(fraction, stepFraction)) }
        draw(detail: "\(phase) \(done)/\(total)" + (detail.isEmpty ? "" : " " + detail), force: false)
    }

    func endProgress() {}

    private func draw(detail: String, force: Bool) {
        guard live else { return }
        let now = (clock.now - start).seconds
        guard force || now - lastDraw >= 0.1 else { return }
        lastDraw = now
        // Steps before the current one are done; the current one is `fraction` done.
        let finished = weights.prefix(max(0, index - 1)).reduce(0, +)
        let current = index >= 1 && index <= weights.count ? weights[index - 1] : 0
        let total = weights.reduce(0, +)
        let done = finished + fraction * current
        let overall = total > 0 ? min(1, done / total) : 0
        let eta = done > 0 ? now / done * max(0, total - done) : 0
        let width = 20, filled = Int(Double(width) * fraction)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let text = String(format: "%@ [%@] %@ · study %2.0f%% ETA %@", label, bar, detail, 100 * overall, duration(eta))
        FileHandle.standardError.write(Data(("\r" + text + "\u{1B}[K").utf8))
    }

    private func clearLine() {
        guard live else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    private func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }
}
