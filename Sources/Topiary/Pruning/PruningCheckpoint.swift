/// Not API: the checkpoint of an ``IterativePruner`` run, a folder holding the network after the
/// last completed step (`step-NNNN.safetensors`, written atomically) and `state.json`, written
/// atomically after it and naming it, so a crash at any point leaves a consistent pair.
struct PruningCheckpoint {
    let directory: String

    struct State {
        var fingerprint: String
        var epochsCompleted: Int
        var initialSparsity: Double
        var originalHidden: [Int]
        var keptNeurons: [[Int]]
        var records: [PruningStepRecord]
        var modelFile: String?
    }

    static let stateFile = "state.json"
    static let format = "topiary-pruning-checkpoint"

    var statePath: String { FileSystem.join(directory, Self.stateFile) }

    /// Saves the network and the state (which is updated to name the new model file).
    func save(network: Chain, normalization: Normalization, state: inout State) throws {
        try FileSystem.createDirectory(directory)
        let previous = state.modelFile
        let name = "step-" + String(repeating: "0", count: max(0, 4 - String(state.records.count).count)) + "\(state.records.count).safetensors"
        try Model(network: network, normalization: normalization,
                  provenance: PruningProvenance(method: state.fingerprint, steps: state.records.count))
            .save(to: FileSystem.join(directory, name))
        state.modelFile = name
        try FileSystem.writeAtomically(Array(Self.encode(state).utf8), to: statePath)
        if let previous, previous != name { FileSystem.removeFile(FileSystem.join(directory, previous)) }
    }

    /// The saved network and state, or `nil` when the folder holds no checkpoint.
    ///
    /// `originalSizes` are the sizes of the network the run starts from (before any structured
    /// step): the state's hidden sizes must be its hidden sizes, every kept neuron index must be an
    /// increasing index in range of them, and the saved network must have the sizes they imply.
    ///
    /// - Throws: `corruptFile` naming the file when the state or the model does not fit the run.
    func load(originalSizes: [Int]) throws -> (network: Chain, state: State)? {
        guard FileSystem.isFile(statePath) else { return nil }
        let bytes = try FileSystem.readFile(statePath, maximumSize: 64 << 20)
        let state = try Self.decode(bytes, source: statePath)
        func corrupt(_ m: String) -> TopiaryError { TopiaryError(.corruptFile, "\(statePath): \(m)") }
        guard let file = state.modelFile else { throw corrupt("names no model file") }
        guard originalSizes.count >= 2 else { throw corrupt("the network has no layers") }
        let hidden = Array(originalSizes.dropFirst().dropLast())
        guard state.originalHidden == hidden else {
            throw corrupt("original hidden sizes \(state.originalHidden) differ from the network's \(hidden)")
        }
        guard state.keptNeurons.count == hidden.count else {
            throw corrupt("\"kept_neurons\" has \(state.keptNeurons.count) lists, the network \(hidden.count) hidden layers")
        }
        for (l, kept) in state.keptNeurons.enumerated() {
            guard kept.allSatisfy({ (0..<hidden[l]).contains($0) }), zip(kept, kept.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw corrupt("\"kept_neurons\" of hidden layer \(l) must be increasing indices in 0..<\(hidden[l])")
            }
        }
        guard state.epochsCompleted >= 0 else { throw corrupt("\"epochs_completed\" is negative") }
        guard state.initialSparsity.isFinite, (0...1).contains(state.initialSparsity) else {
            throw corrupt("\"initial_sparsity\" \(state.initialSparsity) is outside [0, 1]")
        }
        guard !file.isEmpty, !file.contains("/") else { throw corrupt("model file \"\(file)\" is not a file name in the checkpoint folder") }
        let modelPath = FileSystem.join(directory, file)
        let model = try Model.load(from: modelPath)
        let expected = [originalSizes[0]] + state.keptNeurons.map(\.count) + [originalSizes[originalSizes.count - 1]]
        guard model.network.sizes == expected else {
            throw TopiaryError(.corruptFile, "\(modelPath): the checkpoint network is \(model.network.sizes.map(String.init).joined(separator: "-")), \(statePath) implies \(expected.map(String.init).joined(separator: "-"))")
        }
        return (model.network, state)
    }

    /// Checks that the state's records fit a run of `phaseCount` phases.
    ///
    /// - Throws: `corruptFile` naming the state file when it records more steps than the run has.
    func check(_ state: State, phaseCount: Int) throws {
        guard state.records.count <= phaseCount else {
            throw TopiaryError(.corruptFile, "\(statePath): records \(state.records.count) completed steps, the run has only \(phaseCount)")
        }
    }

    // MARK: JSON

    static func number(_ x: Double?) -> String { x.map { $0.isFinite ? "\($0)" : "null" } ?? "null" }

    static func encode(_ s: State) -> String {
        func ints(_ a: [Int]) -> String { "[" + a.map(String.init).joined(separator: ",") + "]" }
        func doubles(_ a: [Double]) -> String { "[" + a.map(number).joined(separator: ",") + "]" }
        let records = s.records.map { r in
            "{\"step\":\(r.step),\"target_sparsity\":\(number(r.targetSparsity)),\"sparsity\":\(number(r.sparsity)),"
                + "\"layer_sparsity\":\(doubles(r.layerSparsity)),\"sizes\":\(ints(r.sizes)),"
                + "\"val_accuracy\":\(number(r.valAccuracy)),\"val_loss\":\(number(r.valLoss)),"
                + "\"test_accuracy\":\(number(r.testAccuracy)),\"test_loss\":\(number(r.testLoss)),"
                + "\"epochs\":\(r.epochs),\"milestone\":\(r.milestone),\"prune_seconds\":\(number(r.pruneSeconds)),"
                + "\"seconds\":\(number(r.seconds))}"
        }
        return "{\"format\":\(JSONValue.quoted(format)),\"version\":1,\"fingerprint\":\(JSONValue.quoted(s.fingerprint)),"
            + "\"epochs_completed\":\(s.epochsCompleted),\"initial_sparsity\":\(number(s.initialSparsity)),"
            + "\"original_hidden\":\(ints(s.originalHidden)),\"kept_neurons\":[" + s.keptNeurons.map(ints).joined(separator: ",") + "],"
            + "\"model\":" + (s.modelFile.map(JSONValue.quoted) ?? "null") + ",\"records\":[" + records.joined(separator: ",") + "]}\n"
    }

    static func decode(_ bytes: [UInt8], source: String) throws -> State {
        func corrupt(_ m: String) -> TopiaryError { TopiaryError(.corruptFile, "\(source): \(m)") }
        let root: JSONValue
        do { root = try JSONValue.parse(bytes[...]) } catch let e as JSONValue.ParseError {
            throw corrupt("\(e.message) at byte \(e.offset)")
        }
        func field(_ v: JSONValue, _ key: String) throws -> JSONValue {
            guard case .object(let entries) = v, let e = entries.first(where: { $0.key == key }) else { throw corrupt("missing \"\(key)\"") }
            return e.value
        }
        func optionalDouble(_ v: JSONValue) throws -> Double? {
            if case .null = v { return nil }
            return try double(v)
        }
        func double(_ v: JSONValue) throws -> Double {
            if case .null = v { return .nan }
            guard case .number(let t) = v, let x = Double(t) else { throw corrupt("expected a number, got \(v.kindName)") }
            return x
        }
        func int(_ v: JSONValue) throws -> Int {
            guard case .number(let t) = v, let x = Int(t) else { throw corrupt("expected an integer, got \(v.kindName)") }
            return x
        }
        func array(_ v: JSONValue) throws -> [JSONValue] {
            guard case .array(let a) = v else { throw corrupt("expected an array, got \(v.kindName)") }
            return a
        }
        func string(_ v: JSONValue) throws -> String {
            guard case .string(let s) = v else { throw corrupt("expected a string, got \(v.kindName)") }
            return s
        }
        guard try string(field(root, "format")) == format, try int(field(root, "version")) == 1 else {
            throw corrupt("not a version 1 \(format)")
        }
        let records = try array(field(root, "records")).map { r -> PruningStepRecord in
            guard case .bool(let milestone) = try field(r, "milestone") else { throw corrupt("\"milestone\" must be a boolean") }
            return PruningStepRecord(
                step: try int(field(r, "step")), targetSparsity: try double(field(r, "target_sparsity")),
                sparsity: try double(field(r, "sparsity")), layerSparsity: try array(field(r, "layer_sparsity")).map(double),
                sizes: try array(field(r, "sizes")).map(int), valAccuracy: try optionalDouble(field(r, "val_accuracy")),
                valLoss: try optionalDouble(field(r, "val_loss")), testAccuracy: try double(field(r, "test_accuracy")),
                testLoss: try double(field(r, "test_loss")), epochs: try int(field(r, "epochs")), milestone: milestone,
                pruneSeconds: try double(field(r, "prune_seconds")), seconds: try double(field(r, "seconds")))
        }
        let model = try field(root, "model")
        var modelFile: String?
        if case .null = model { modelFile = nil } else { modelFile = try string(model) }
        return State(fingerprint: try string(field(root, "fingerprint")),
                     epochsCompleted: try int(field(root, "epochs_completed")),
                     initialSparsity: try double(field(root, "initial_sparsity")),
                     originalHidden: try array(field(root, "original_hidden")).map(int),
                     keptNeurons: try array(field(root, "kept_neurons")).map { try array($0).map(int) },
                     records: records, modelFile: modelFile)
    }
}
