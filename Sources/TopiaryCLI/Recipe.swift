import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary
import Yams

/// A study for `topiary run`, read from YAML.
///
/// Each section's keys are the long options of one command, without the dashes: `data` those of
/// the data options, `training` those of `topiary train`, each entry of `methods` those of
/// `topiary prune`, `sensitivity` those of `topiary sensitivity`, `bench` those of `topiary bench`.
/// A recipe is checked by parsing each section with that command's own parser (so the recipe and
/// the command line cannot disagree), after a check of its keys that names the key's path, its
/// line and the nearest valid key. Lists become comma-separated values; `true` turns a flag on.
struct Recipe: Equatable {
    /// One pruning method: `topiary prune` arguments and the sparsities it is taken to.
    struct Method: Equatable {
        var name: String
        /// `topiary prune` arguments, without the model, output, seed and targets (the study sets them).
        var arguments: [String]
        var targets: [Double]
        /// Whether one run reaches every target as a milestone (a geometric schedule), else one run per target.
        var milestones: Bool
        var structured: Bool
    }

    var name: String
    var description: String?
    var output: String
    var seeds: [UInt64]
    var dataArguments: [String]
    /// `topiary train` arguments (without data, seed and output).
    var trainingArguments: [String]
    var threads: Int
    /// `topiary sensitivity` arguments, or `nil` when the recipe turns the analysis off.
    var sensitivityArguments: [String]?
    var methods: [Method]
    var benchBatches: [Int]
    var benchThreads: [Int]
    /// Sparsities of the crossover sweep: the dense model pruned by one-shot global magnitude, benchmarked.
    var benchSparsities: [Double]

    /// Reads and checks a recipe; every mistake is a `TopiaryError` naming the file, line and key.
    init(contentsOfFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TopiaryError(.fileNotFound, "Cannot read the recipe \(path).")
        }
        guard data.count <= 1 << 20 else { throw TopiaryError(.invalidOption, "\(path): a recipe of \(data.count) bytes; recipes are at most 1 MiB.") }
        guard let text = String(data: data, encoding: .utf8) else { throw TopiaryError(.corruptFile, "\(path) is not UTF-8 text.") }
        try self.init(yaml: text, file: path)
    }

    /// Parses `yaml`; `file` names it in errors.
    init(yaml: String, file: String) throws {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else { throw TopiaryError(.invalidOption, "\(file): the recipe is empty.") }
            root = node
        } catch let error as TopiaryError {
            throw error
        } catch {
            throw TopiaryError(.invalidOption, "\(file): not valid YAML: \(error)")
        }
        let r = RecipeReader(file: file)
        let top = try r.mapping(root, path: "", keys: ["name", "description", "output", "seeds", "targets", "data", "training",
                                                      "sensitivity", "methods", "bench"])

        name = try top["name"].map { try r.string($0, path: "name") } ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw r.error(top["name"], "name", "'\(name)' must be letters, digits, '-', '_' or '.'")
        }
        description = try top["description"].map { try r.string($0, path: "description") }
        output = try top["output"].map { try r.string($0, path: "output") } ?? "topiary-\(name)"
        seeds = try top["seeds"].map { node in
            try r.list(node, path: "seeds").enumerated().map { i, item in
                guard let v = UInt64(try r.string(item, path: "seeds[\(i)]")) else { throw r.error(item, "seeds[\(i)]", "expected a seed (a whole number ≥ 0)") }
                return v
            }
        } ?? [0]
        guard !seeds.isEmpty, Set(seeds).count == seeds.count else { throw r.error(top["seeds"], "seeds", "needs distinct seeds") }
        let targets = try top["targets"].map { try r.sparsities($0, path: "targets") } ?? [0.9, 0.95, 0.98]

        // data: the data options, shared by every command.
        let dataCatalog = OptionCatalog(Train.self, only: OptionCatalog.dataKeys)
        dataArguments = try top["data"].map { try r.arguments($0, path: "data", catalog: dataCatalog) } ?? []

        // training: `topiary train`.
        let trainCatalog = OptionCatalog(Train.self, excluding: OptionCatalog.dataKeys.union(["output", "json", "seed"]),
                                         setElsewhere: ["seed": "the study's seeds (top-level 'seeds')", "output": "the study (its dense/ folder)"])
        trainingArguments = try top["training"].map { try r.arguments($0, path: "training", catalog: trainCatalog) } ?? []
        let train = try r.parse(Train.self, dataArguments + trainingArguments + ["--seed", "0", "--output", "dense.safetensors"],
                                sections: [("data", top["data"]), ("training", top["training"])])
        threads = train.common.threads

        // sensitivity: `topiary sensitivity`, or `false`.
        let sensitivityCatalog = OptionCatalog(Sensitivity.self, excluding: OptionCatalog.dataKeys.union(["model", "json", "csv", "seed", "threads", "budget", "target"]),
                                               setElsewhere: ["seed": "the study's seeds", "model": "the study (the dense model)"])
        if let node = top["sensitivity"], case .scalar(let s) = node, ["false", "no", "off"].contains(s.string.lowercased()) {
            sensitivityArguments = nil
        } else {
            let args = try top["sensitivity"].map { try r.arguments($0, path: "sensitivity", catalog: sensitivityCatalog) } ?? []
            _ = try r.parse(Sensitivity.self, dataArguments + args + ["--model", "dense.safetensors"], sections: [("sensitivity", top["sensitivity"])])
            sensitivityArguments = args
        }

        // methods: `topiary prune`, plus a name and optional targets of their own.
        let pruneCatalog = OptionCatalog(Prune.self, excluding: OptionCatalog.dataKeys.union(["model", "output", "milestone-output", "checkpoint", "resume", "record-paths", "json", "seed", "target", "milestones"]),
                                         setElsewhere: ["seed": "the study's seeds", "target": "'targets' (the study's, or the method's own)",
                                                        "milestones": "'targets' (a geometric method reaches them all as milestones)",
                                                        "model": "the study (the dense model)", "output": "the study (its models/ folder)"],
                                         extra: ["name", "targets"])
        guard let methodsNode = top["methods"] else { throw r.error(nil, "methods", "a recipe needs at least one method") }
        var methods: [Method] = []
        for (i, node) in try r.list(methodsNode, path: "methods").enumerated() {
            let path = "methods[\(i)]"
            let fields = try r.mapping(node, path: path, keys: [])
            let args = try r.arguments(node, path: path, catalog: pruneCatalog)
            let methodTargets = try fields["targets"].map { try r.sparsities($0, path: path + ".targets") } ?? targets
            var prune = try r.parse(Prune.self, dataArguments + args + ["--model", "dense.safetensors", "--seed", "0", "--target", "\(methodTargets.max() ?? 0.9)"],
                                    sections: [(path, node)])
            let milestones = prune.schedule.schedule == .geometric
            if milestones {
                prune = try r.parse(Prune.self, dataArguments + args + ["--model", "dense.safetensors", "--seed", "0",
                                                                        "--milestones", methodTargets.map { "\($0)" }.joined(separator: ",")],
                                    sections: [(path, node)])
            }
            let name = try fields["name"].map { try r.string($0, path: path + ".name") } ?? Recipe.defaultName(prune)
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw r.error(fields["name"], path + ".name", "'\(name)' must be letters, digits, '-', '_' or '.' (it names files)")
            }
            if let other = methods.firstIndex(where: { $0.name == name }) {
                throw r.error(fields["name"] ?? node, path + ".name", "'\(name)' is also the name of methods[\(other)]; give each method its own name")
            }
            methods.append(Method(name: name, arguments: args, targets: methodTargets, milestones: milestones, structured: prune.structure.neurons))
        }
        guard !methods.isEmpty else { throw r.error(methodsNode, "methods", "a recipe needs at least one method") }
        self.methods = methods

        // bench: `topiary bench`'s batch, threads and sparsity lists.
        let benchCatalog = OptionCatalog(Bench.self, only: ["batch", "threads", "sparsity"])
        let benchArgs = try top["bench"].map { try r.arguments($0, path: "bench", catalog: benchCatalog) } ?? []
        let bench = try r.parse(Bench.self, ["--batch", "1,128", "--threads", "1", "--sparsity", "0,0.5,0.7,0.8,0.9,0.95,0.98"] + benchArgs,
                                sections: [("bench", top["bench"])])
        let grid = try bench.grid()
        (benchBatches, benchThreads, benchSparsities) = (grid.batches, grid.threads, grid.sparsities)
    }

    /// A name from the method's options: `magnitude-global-geometric`, `neurons-l1-layerwise-oneshot`.
    static func defaultName(_ p: Prune) -> String {
        let schedule = p.schedule.schedule.defaultValueDescription.hasPrefix("list:") ? "list" : p.schedule.schedule.defaultValueDescription
        if p.structure.neurons {
            return ["neurons", p.structure.criterion.rawValue, (p.scope.scope == .global ? "global" : "layerwise"), schedule].joined(separator: "-")
        }
        return [p.saliency.saliency.rawValue, (p.scope.scope ?? .global).rawValue, schedule].joined(separator: "-")
    }

    /// The arguments that run `command` as `topiary` would: the text of a command line.
    static func commandLine(_ command: String, _ arguments: [String]) -> String {
        (["topiary", command] + arguments).map { arg in
            arg.allSatisfy({ $0.isLetter || $0.isNumber || "-_./:,=+".contains($0) }) && !arg.isEmpty ? arg : "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

/// The long options of a command, read from its own parser (`_dumpHelp`), so that the recipe keys
/// are exactly the command-line options.
struct OptionCatalog {
    struct Entry {
        var isFlag: Bool
        var values: [String]?
    }

    /// The options of the data (`--dataset`, `--data-dir`, …), in the `data` section only.
    static let dataKeys: Set<String> = ["dataset", "data-dir", "validation", "train-limit", "test-limit"]

    var entries: [String: Entry] = [:]
    /// Keys that are options of the command but set by the study, with what sets them.
    var setElsewhere: [String: String] = [:]
    /// Keys of the recipe that are not options (`name`, `targets`).
    var extra: Set<String> = []

    init<C: ParsableArguments>(_ type: C.Type, excluding: Set<String> = [], only: Set<String>? = nil,
                              setElsewhere: [String: String] = [:], extra: Set<String> = []) {
        let dump = try? JSONDecoder().decode(HelpDump.self, from: Data(type._dumpHelp().utf8))
        for argument in dump?.command.arguments ?? [] {
            guard argument.kind != "positional", let long = argument.names?.first(where: { $0.kind == "long" })?.name,
                  long != "help", long != "version" else { continue }
            if let only, !only.contains(long) { continue }
            if excluding.contains(long) { continue }
            entries[long] = Entry(isFlag: argument.kind == "flag", values: argument.allValues)
        }
        self.setElsewhere = setElsewhere
        self.extra = extra
    }

    var keys: [String] { (Array(entries.keys) + Array(extra)).sorted() }

    /// The part of ArgumentParser's help dump that lists options.
    private struct HelpDump: Decodable {
        struct Command: Decodable { var arguments: [Argument]? }
        struct Argument: Decodable {
            struct Name: Decodable { var kind: String; var name: String }
            var kind: String
            var names: [Name]?
            var allValues: [String]?
        }
        var command: Command
    }

    /// The valid key nearest to `key` (edit distance at most a third of its length, at least 2).
    func suggestion(for key: String) -> String? {
        nearest(key, in: keys)
    }
}

/// The candidate nearest to `word` by edit distance, if within a third of its length (at least 2).
func nearest(_ word: String, in candidates: [String]) -> String? {
    var best: (name: String, distance: Int)?
    for c in candidates.sorted() {
        let d = editDistance(word, c)
        if d < (best?.distance ?? Int.max) { best = (c, d) }
    }
    guard let best, best.distance <= max(2, word.count / 3) else { return nil }
    return best.name
}

/// Levenshtein distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count), current = previous
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// Reads YAML nodes with errors that name the file, line and key path.
private struct RecipeReader {
    let file: String

    func error(_ node: Node?, _ path: String, _ message: String) -> TopiaryError {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return TopiaryError(.invalidOption, "\(file)\(line): \(path.isEmpty ? "" : path + ": ")\(message)")
    }

    /// A mapping's values by key; with `keys` non-empty, refuses any other key.
    func mapping(_ node: Node, path: String, keys: Set<String>) throws -> [String: Node] {
        guard case .mapping(let m) = node else { throw error(node, path, "expected a mapping of keys to values, got \(kind(node))") }
        var out: [String: Node] = [:]
        for (k, v) in m {
            guard case .scalar(let key) = k else { throw error(k, path, "keys must be plain words") }
            let full = path.isEmpty ? key.string : path + "." + key.string
            if !keys.isEmpty, !keys.contains(key.string) {
                let hint = nearest(key.string, in: Array(keys)).map { "; did you mean \"\($0)\"?" }
                    ?? "; valid keys: \(keys.sorted().joined(separator: ", "))"
                throw error(k, full, "unknown key\(hint)")
            }
            guard out[key.string] == nil else { throw error(k, full, "appears twice") }
            out[key.string] = v
        }
        return out
    }

    func list(_ node: Node, path: String) throws -> [Node] {
        guard case .sequence(let s) = node else { throw error(node, path, "expected a list, got \(kind(node))") }
        return Array(s)
    }

    func string(_ node: Node, path: String) throws -> String {
        guard case .scalar(let s) = node else { throw error(node, path, "expected a single value, got \(kind(node))") }
        return s.string
    }

    func sparsities(_ node: Node, path: String) throws -> [Double] {
        let items = try list(node, path: path)
        let values = try items.enumerated().map { i, item -> Double in
            let text = try string(item, path: "\(path)[\(i)]")
            guard let v = Double(text), v.isFinite else { throw error(item, "\(path)[\(i)]", "expected a sparsity in [0, 1], got '\(text)'") }
            guard (0...1).contains(v) else { throw error(item, "\(path)[\(i)]", "sparsity \(text) is outside [0, 1] (a fraction: 0.9 is 90%)") }
            return v
        }
        guard !values.isEmpty else { throw error(node, path, "needs at least one sparsity") }
        guard Set(values).count == values.count else { throw error(node, path, "lists a sparsity twice") }
        return values.sorted()
    }

    private func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "'\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// A section's keys as command-line arguments, each key checked against `catalog`.
    func arguments(_ node: Node, path: String, catalog: OptionCatalog) throws -> [String] {
        guard case .mapping(let m) = node else { throw error(node, path, "expected a mapping of option names to values, got \(kind(node))") }
        var args: [String] = []
        var seen: Set<String> = []
        for (k, v) in m {
            guard case .scalar(let keyScalar) = k else { throw error(k, path, "keys must be option names") }
            let key = keyScalar.string, keyPath = "\(path).\(key)"
            guard seen.insert(key).inserted else { throw error(k, keyPath, "appears twice") }
            if catalog.extra.contains(key) { continue }
            if let setter = catalog.setElsewhere[key] { throw error(k, keyPath, "is set by \(setter), not here") }
            guard let entry = catalog.entries[key] else {
                let plain = key.hasPrefix("--") ? String(key.dropFirst(2)) : key
                if plain != key, catalog.entries[plain] != nil { throw error(k, keyPath, "unknown key; write it without dashes: \"\(plain)\"") }
                let hint = catalog.suggestion(for: key).map { "; did you mean \"\($0)\"?" } ?? "; valid keys: \(catalog.keys.joined(separator: ", "))"
                throw error(k, keyPath, "unknown key\(hint)")
            }
            let value: String
            switch v {
            case .scalar(let s): value = s.string
            case .sequence(let items):
                value = try items.enumerated().map { i, item in try string(item, path: "\(keyPath)[\(i)]") }.joined(separator: ",")
            default: throw error(v, keyPath, "expected a value or a list of values, got \(kind(v))")
            }
            if entry.isFlag {
                switch value.lowercased() {
                case "true", "yes", "on": args.append("--" + key)
                case "false", "no", "off": break
                default: throw error(v, keyPath, "is a flag: expected true or false, got '\(value)'")
                }
                continue
            }
            if let values = entry.values, !values.contains(value) {
                let hint = nearest(value, in: values).map { "; did you mean \"\($0)\"?" } ?? ""
                throw error(v, keyPath, "'\(value)' is not one of \(values.joined(separator: ", "))\(hint)")
            }
            args += ["--" + key, value]
        }
        return args
    }

    /// Parses `arguments` with `C`'s parser; an error names the section key whose option it mentions.
    func parse<C: ParsableArguments>(_ type: C.Type, _ arguments: [String], sections: [(String, Node?)]) throws -> C {
        do {
            return try C.parse(arguments)
        } catch {
            let message = C.message(for: error)
            // The longest option the message names that a section sets.
            for (path, node) in sections {
                guard let node, case .mapping(let m) = node else { continue }
                let named = m.compactMap { k, v -> (String, Node)? in
                    guard case .scalar(let s) = k, message.contains("--" + s.string) else { return nil }
                    return (s.string, v)
                }.max { $0.0.count < $1.0.count }
                if let (key, value) = named { throw self.error(value, "\(path).\(key)", message) }
            }
            // Else a key the message names as a word ("batch size 0 is outside …").
            let words = Set(message.lowercased().split { !$0.isLetter && !$0.isNumber && $0 != "-" }.map(String.init))
            for (path, node) in sections {
                guard let node, case .mapping(let m) = node else { continue }
                if let (key, value) = m.compactMap({ k, v -> (String, Node)? in
                    guard case .scalar(let s) = k, words.contains(s.string) else { return nil }
                    return (s.string, v)
                }).max(by: { $0.0.count < $1.0.count }) {
                    throw self.error(value, "\(path).\(key)", message)
                }
            }
            let where_ = sections.first { $0.1 != nil }
            throw self.error(where_?.1, where_?.0 ?? "", message)
        }
    }
}
