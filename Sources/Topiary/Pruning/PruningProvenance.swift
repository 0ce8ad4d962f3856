/// How a pruned model was made, recorded in its file (``Model/provenance``): the method, how far
/// it got, and which model it started from.
///
/// The source is a file name, not a path: model files do not carry the folders of the machine
/// they were made on unless the caller chooses to record one.
///
/// ```swift
/// let run = IterativePruner(network: model.network, dataset: data, plan: .steps(.oneShot(0.9)))
/// let report = try run.run()
/// let provenance = PruningProvenance(method: run.fingerprint, steps: report.steps.count,
///                                    source: "dense.safetensors")
/// try Model(network: run.network, normalization: model.normalization, provenance: provenance).save(to: "pruned.safetensors")
/// ```
public struct PruningProvenance: Codable, Sendable, Equatable {
    /// The method, as ``IterativePruner/fingerprint`` describes it (saliency, scope, schedule,
    /// fine-tuning, optimizer, seed).
    public var method: String
    /// Pruning steps completed when the model was saved.
    public var steps: Int
    /// The model that was pruned, by file name (or the path the caller chose to record); `nil` when unknown.
    public var source: String?

    /// Creates a record.
    public init(method: String, steps: Int, source: String? = nil) {
        self.method = method
        self.steps = steps
        self.source = source
    }
}
