/// Where a pruning step's target applies: the article's *layerwise* and *global* magnitude
/// pruning, per-layer targets (from the user or from a ``SensitivityAnalysis``), with options to
/// protect a layer or cap its sparsity.
///
/// Layers are numbered as in ``Chain/layers`` (for LeNet-300-100: 0, 1, 2, the output
/// layer being 2). Pruning to sparsity `s` means:
/// - ``layerwise``: each unprotected layer of `n_l` weights keeps exactly `n_l − round(s_l·n_l)`,
///   with `s_l = min(s, cap_l)`; protected layers are left alone.
/// - ``global``: one threshold over the weights of all unprotected layers, so that the prunable
///   layers together keep exactly `n − round(s·n)` of their `n` weights. Protected layers count in
///   `n` but lose nothing; a capped layer is held at its cap and the others make up the difference.
/// - ``perLayer(_:)``: a profile of per-layer sparsities `t_l`; at `s` layer `l` is pruned to
///   `min(1, t_l · s / t̄)` where `t̄` is the overall sparsity the profile implies, so the layers land
///   exactly on their targets at `s = t̄` (see `impliedSparsity(layerSizes:)`).
/// - ``allocated(name:_:)``: any map from the overall sparsity to per-layer sparsities (sensitivity
///   analysis provides one).
///
/// ```swift
/// let scope = PruningScope.global.capping(layer: 2, at: 0.5)   // output layer at most 50% sparse
/// let firstOnly = PruningScope.layerwise.protecting(1, 2)
/// ```
public struct PruningScope {
    /// How the overall target is turned into per-layer pruning.
    enum Allocation {
        /// The same sparsity in every layer.
        case layerwise
        /// One threshold over all prunable weights.
        case global
        /// A profile of per-layer sparsities, scaled to the requested overall sparsity.
        case perLayer([Double])
        /// A function from the overall sparsity to per-layer sparsities.
        case allocated(name: String, (Double) -> [Double])
    }

    /// How the target is applied.
    var allocation: Allocation
    /// Prunable-layer indices that are never pruned further.
    public var protectedLayers: Set<Int>
    /// Upper bounds on the sparsity of individual prunable layers, by index.
    public var sparsityCaps: [Int: Double]

    /// Creates a scope.
    init(_ allocation: Allocation, protectedLayers: Set<Int> = [], sparsityCaps: [Int: Double] = [:]) {
        self.allocation = allocation
        self.protectedLayers = protectedLayers
        self.sparsityCaps = sparsityCaps
    }

    /// The same fraction of every layer.
    public static var layerwise: PruningScope { PruningScope(.layerwise) }
    /// One threshold over all prunable weights.
    public static var global: PruningScope { PruningScope(.global) }
    /// A profile of per-layer target sparsities (one per prunable layer).
    public static func perLayer(_ targets: [Double]) -> PruningScope { PruningScope(.perLayer(targets)) }
    /// Per-layer sparsities computed from the overall sparsity by `allocate`.
    public static func allocated(name: String, _ allocate: @escaping (Double) -> [Double]) -> PruningScope {
        PruningScope(.allocated(name: name, allocate))
    }

    /// This scope with `layers` protected from pruning.
    public func protecting(_ layers: Int...) -> PruningScope {
        var s = self
        s.protectedLayers.formUnion(layers)
        return s
    }

    /// This scope with prunable layer `layer`'s sparsity capped at `cap`.
    public func capping(layer: Int, at cap: Double) -> PruningScope {
        var s = self
        s.sparsityCaps[layer] = cap
        return s
    }

    /// A short description for logs and JSON (`global`, `layerwise`, `per-layer(0.9,0.8,0.5)`, plus options).
    var name: String {
        var text: String
        switch allocation {
        case .layerwise: text = "layerwise"
        case .global: text = "global"
        case .perLayer(let t): text = "per-layer(" + t.map { "\($0)" }.joined(separator: ",") + ")"
        case .allocated(let name, _): text = name
        }
        if !protectedLayers.isEmpty { text += " protect " + protectedLayers.sorted().map(String.init).joined(separator: ",") }
        for (l, c) in sparsityCaps.sorted(by: { $0.key < $1.key }) { text += " cap \(l)≤\(c)" }
        return text
    }

    /// The overall sparsity a ``perLayer(_:)`` profile implies for layers of `layerSizes` weights:
    /// `Σ t_l n_l / Σ n_l` (protected layers and caps taken into account); for other scopes `nil`.
    func impliedSparsity(layerSizes: [Int]) -> Double? {
        guard case .perLayer(let targets) = allocation, targets.count == layerSizes.count else { return nil }
        let total = layerSizes.reduce(0, +)
        guard total > 0 else { return 0 }
        var pruned = 0.0
        for (l, (t, n)) in zip(targets, layerSizes).enumerated() where !protectedLayers.contains(l) {
            pruned += min(t, sparsityCaps[l] ?? 1) * Double(n)
        }
        return pruned / Double(total)
    }

    /// Checks the scope against a network with `layerCount` prunable layers.
    ///
    /// - Throws: `invalidOption` for layer indices out of range, caps or targets outside `[0, 1]`,
    ///   or a profile of the wrong length.
    func validate(layerCount: Int) throws {
        for l in protectedLayers where !(0..<layerCount).contains(l) {
            throw TopiaryError(.invalidOption, "cannot protect layer \(l): the network has prunable layers 0...\(layerCount - 1)")
        }
        for (l, c) in sparsityCaps {
            guard (0..<layerCount).contains(l) else {
                throw TopiaryError(.invalidOption, "cannot cap layer \(l): the network has prunable layers 0...\(layerCount - 1)")
            }
            guard c.isFinite, (0...1).contains(c) else {
                throw TopiaryError(.invalidOption, "the sparsity cap of layer \(l) must be in [0, 1], got \(c)")
            }
        }
        if case .perLayer(let targets) = allocation {
            guard targets.count == layerCount else {
                throw TopiaryError(.invalidOption, "\(targets.count) per-layer targets given, the network has \(layerCount) prunable layers")
            }
            if let bad = targets.first(where: { !$0.isFinite || !(0...1).contains($0) }) {
                throw TopiaryError(.invalidOption, "per-layer targets must be in [0, 1], got \(bad)")
            }
        }
    }

    /// The per-layer sparsities at overall sparsity `s` for the non-global allocations
    /// (caps and protection applied; protected layers get `nil`), or `nil` for ``global``.
    func layerTargets(at s: Double, layerSizes: [Int]) throws -> [Double?]? {
        let raw: [Double]
        switch allocation {
        case .global: return nil
        case .layerwise: raw = layerSizes.map { _ in s }
        case .perLayer(let targets):
            let implied = impliedSparsity(layerSizes: layerSizes) ?? 0
            raw = targets.map { implied > 0 ? min(1, $0 * s / implied) : 0 }
        case .allocated(let name, let allocate):
            raw = allocate(s)
            guard raw.count == layerSizes.count, raw.allSatisfy({ $0.isFinite && (0...1).contains($0) }) else {
                throw TopiaryError(.invalidOption, "the allocation \(name) returned \(raw) for sparsity \(s); expected \(layerSizes.count) values in [0, 1]")
            }
        }
        return raw.enumerated().map { l, t in
            protectedLayers.contains(l) ? nil : min(t, sparsityCaps[l] ?? 1)
        }
    }
}
