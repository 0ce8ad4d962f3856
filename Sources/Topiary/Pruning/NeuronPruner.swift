/// How important a hidden neuron is, for structured pruning.
public enum NeuronCriterion {
    /// The L1 norm of the neuron's incoming weights, `Σ_j |W_l[i, j]|`.
    case l1
    /// The L2 norm of the neuron's incoming weights, `√(Σ_j W_l[i, j]²)`.
    case l2
    /// The mean absolute activation of the neuron over the first `sampleCount` examples of `data`.
    case activation(LabeledData, sampleCount: Int)

    /// A short name (`l1`, `l2`, `activation`).
    var name: String {
        switch self {
        case .l1: return "l1"
        case .l2: return "l2"
        case .activation: return "activation"
        }
    }

    /// Whether the criterion squares the weights (``l2``).
    var isL2: Bool {
        if case .l2 = self { return true }
        return false
    }
}

/// Structured pruning: removes whole hidden neurons, producing a physically smaller network.
///
/// Removing neuron `i` of layer `l` deletes row `i` of `W_l` (and of its mask), entry `i` of
/// `b_l`, and column `i` of `W_{l+1}`. The smaller network computes exactly what the original
/// computes with those rows and columns masked out (ReLU, tanh, sigmoid alike, because the
/// outgoing column is gone). The output layer's neurons are never removed, and neither is the
/// last neuron of a hidden layer: every hidden layer keeps at least one.
///
/// Two scopes (a ``PruningScope`` of either allocation; protection, caps and per-layer profiles
/// belong to weight pruning):
/// - ``PruningScope/layerwise`` (the default): in each hidden layer of `m` neurons, removing a fraction
///   `f` of the original `m₀` removes neurons until `m₀ − round(f·m₀)` remain (at least one); the
///   lowest scores go first, ties to the lower index.
/// - ``PruningScope/global``: all hidden neurons of all hidden layers are ranked together, so removing a
///   fraction `f` of the original `H₀` hidden neurons leaves `H₀ − round(f·H₀)` of them, however
///   they fall among the layers (exactly, unless that would empty a layer: then a layer's last
///   neuron is skipped and the next lowest goes instead, and at most `H − L` of the `H` current
///   neurons of `L` hidden layers are removed). Raw norms grow with the fan-in, so the global
///   ranking uses scores comparable across layers (``comparableScores(_:)``): the mean absolute
///   incoming weight for L1, the L2 norm over `√fan-in` for L2, the mean absolute activation for
///   activation. Ties go to the lower layer, then the lower index.
///
/// ```swift
/// let pruner = NeuronPruner(criterion: .l1)
/// let step = try pruner.prune(network, to: 0.5)   // 784-300-100-10 becomes 784-150-50-10
/// let global = NeuronPruner(criterion: .l2, scope: .global)   // 200 of the 400 hidden neurons, wherever they are
/// ```
public struct NeuronPruner {
    /// How neurons are scored.
    public var criterion: NeuronCriterion
    /// Optional per-hidden-layer fractions overriding the target (one per hidden layer; layerwise only).
    public var layerFractions: [Double]?
    /// Where the target applies: ``PruningScope/layerwise`` (the default) or ``PruningScope/global``,
    /// without protected layers or caps.
    public var scope: PruningScope

    /// Creates a neuron pruner.
    public init(criterion: NeuronCriterion = .l1, layerFractions: [Double]? = nil, scope: PruningScope = .layerwise) {
        self.criterion = criterion
        self.layerFractions = layerFractions
        self.scope = scope
    }

    /// Whether the scope ranks all hidden neurons together.
    var isGlobal: Bool {
        if case .global = scope.allocation { return true }
        return false
    }

    /// Checks that the scope is one neuron pruning understands.
    private func validateScope() throws {
        switch scope.allocation {
        case .layerwise, .global: break
        case .perLayer, .allocated:
            throw TopiaryError(.invalidOption, "neuron pruning takes the layerwise or the global scope, not \(scope.name); per-layer neuron fractions are NeuronPruner.layerFractions")
        }
        guard scope.protectedLayers.isEmpty, scope.sparsityCaps.isEmpty else {
            throw TopiaryError(.invalidOption, "neuron pruning does not protect or cap layers (scope \(scope.name)); use NeuronPruner.layerFractions to prune layers differently")
        }
    }

    /// One score per neuron of each hidden layer (all layers but the last).
    ///
    /// - Throws: `invalidOption` for an empty activation sample, `invalidShape` for data of the wrong width.
    func scores(_ network: Chain) throws -> [[Float]] {
        let hidden = network.layers.dropLast()
        switch criterion {
        case .l1, .l2:
            let squared = criterion.isL2
            return hidden.map { layer in
                (0..<layer.outputSize).map { i in
                    var s: Float = 0
                    for j in 0..<layer.inputSize {
                        let w = layer.weight[i, j]
                        s += squared ? w * w : abs(w)
                    }
                    return squared ? s.squareRoot() : s
                }
            }
        case .activation(let data, let sampleCount):
            let n = min(sampleCount, data.count)
            guard n > 0 else { throw TopiaryError(.invalidOption, "the activation criterion needs at least one example") }
            guard data.featureCount == network.inputSize else {
                throw TopiaryError(.invalidShape, "activation sample has \(data.featureCount) features, the network expects \(network.inputSize)")
            }
            var sums = hidden.map { [Double](repeating: 0, count: $0.outputSize) }
            let batch = min(n, 1000)
            var workspace = Chain.Workspace(for: network, batchCapacity: batch)
            data.images.storage.withUnsafeBufferPointer { images in
                var start = 0
                while start < n {
                    let b = min(batch, n - start)
                    network.forward(images.baseAddress! + start * network.inputSize, batch: b, workspace: &workspace)
                    for l in sums.indices {
                        let width = network.layers[l].outputSize
                        let a = workspace.activations[l]
                        for r in 0..<b {
                            for i in 0..<width { sums[l][i] += Double(abs(a[r * width + i])) }
                        }
                    }
                    start += b
                }
            }
            return sums.map { $0.map { Float($0 / Double(n)) } }
        }
    }

    /// The scores the global scope ranks, comparable across layers of different fan-in: for a
    /// layer of fan-in `k`, L1 becomes the mean absolute incoming weight `Σ_j |W[i, j]| / k`, L2
    /// becomes `√(Σ_j W[i, j]²) / √k` (the root mean square); the activation criterion is already
    /// a mean and is unchanged.
    ///
    /// - Throws: as ``scores(_:)``.
    func comparableScores(_ network: Chain) throws -> [[Float]] {
        let raw = try scores(network)
        switch criterion {
        case .activation: return raw
        case .l1, .l2:
            let squared = criterion.isL2
            return zip(raw, network.layers).map { scores, layer in
                let k = Float(layer.inputSize)
                let divisor = squared ? k.squareRoot() : k
                return scores.map { $0 / divisor }
            }
        }
    }

    /// Removes hidden neurons of `network` in place (its ``Chain/layers`` are replaced) until
    /// `fraction` of `originalSizes` (the hidden widths before any structured pruning; the current
    /// widths by default) is removed: in each hidden layer for the layerwise scope, over all hidden
    /// neurons together for the global scope (see ``NeuronPruner``).
    ///
    /// - Throws: `invalidOption` for a fraction outside `[0, 1]`, wrong per-layer fractions,
    ///   per-layer fractions with the global scope, or a scope other than layerwise or global
    ///   (or one with protected or capped layers).
    @discardableResult
    public func prune(_ network: Chain, to fraction: Double, originalSizes: [Int]? = nil) throws -> NeuronPruningResult {
        try validateScope()
        let hiddenCount = network.layers.count - 1
        if isGlobal, layerFractions != nil {
            throw TopiaryError(.invalidOption, "per-layer neuron fractions apply to the layerwise scope, not the global one")
        }
        let fractions = layerFractions ?? [Double](repeating: fraction, count: hiddenCount)
        guard fractions.count == hiddenCount else {
            throw TopiaryError(.invalidOption, "\(fractions.count) per-layer fractions given, the network has \(hiddenCount) hidden layers")
        }
        guard fraction.isFinite, (0...1).contains(fraction), fractions.allSatisfy({ $0.isFinite && (0...1).contains($0) }) else {
            throw TopiaryError(.invalidOption, "neuron fractions must be in [0, 1], got \(fraction) / \(fractions)")
        }
        let original = originalSizes ?? Array(network.sizes.dropFirst().dropLast())
        guard original.count == hiddenCount else {
            throw TopiaryError(.invalidOption, "\(original.count) original hidden sizes given, the network has \(hiddenCount) hidden layers")
        }
        var kept: [[Int]] = []
        if isGlobal {
            kept = globalSelection(try comparableScores(network), originalTotal: original.reduce(0, +), fraction: fraction)
        } else {
            let scores = try self.scores(network)
            for l in 0..<hiddenCount {
                let width = network.layers[l].outputSize
                let f = layerFractions == nil ? fraction : fractions[l]
                let keep = min(width, max(1, original[l] - Int((f * Double(original[l])).rounded())))
                let order = (0..<width).sorted { (scores[l][$0], $0) < (scores[l][$1], $1) }
                kept.append(order[(width - keep)...].sorted())
            }
        }
        let before = network.sizes
        network.removeNeurons(keeping: kept)
        return NeuronPruningResult(sizesBefore: before, sizesAfter: network.sizes, kept: kept)
    }

    /// The kept neurons of each hidden layer when the lowest of the comparable `scores` of all hidden
    /// layers go until `originalTotal − round(fraction · originalTotal)` remain, never the last of a layer.
    private func globalSelection(_ scores: [[Float]], originalTotal: Int, fraction: Double) -> [[Int]] {
        let widths = scores.map(\.count)
        let current = widths.reduce(0, +)
        let goal = originalTotal - Int((fraction * Double(originalTotal)).rounded())
        var toRemove = max(0, current - goal)
        // Order keys: score (NaN lowest), then layer, then index, so ties go to the lower layer and index.
        var order: [(key: UInt32, layer: Int, index: Int)] = []
        for (l, layerScores) in scores.enumerated() {
            for (i, score) in layerScores.enumerated() { order.append((PruningSelection.orderKey(score), l, i)) }
        }
        order.sort { ($0.key, $0.layer, $0.index) < ($1.key, $1.layer, $1.index) }
        var remaining = widths
        var removed = scores.map { [Bool](repeating: false, count: $0.count) }
        for candidate in order where toRemove > 0 && remaining[candidate.layer] > 1 {
            removed[candidate.layer][candidate.index] = true
            remaining[candidate.layer] -= 1
            toRemove -= 1
        }
        return removed.map { flags in flags.indices.filter { !flags[$0] } }
    }
}

/// What one call of ``NeuronPruner/prune(_:to:originalSizes:)`` did.
public struct NeuronPruningResult: Sendable, Equatable {
    /// The layer sizes before, input first.
    public var sizesBefore: [Int]
    /// The layer sizes after, input first.
    public var sizesAfter: [Int]
    /// For each hidden layer, the indices (in the network before the step) of the neurons kept.
    public var kept: [[Int]]
}

extension Chain {
    /// Removes hidden neurons in place: `kept[l]` lists, increasingly, the output indices of layer
    /// `l` to keep, for each layer but the last. Row `i` of `W_l` (and its mask), `b_l[i]` (and its
    /// bias-mask entry) and column `i` of `W_{l+1}` go for every removed `i`.
    ///
    /// - Precondition: one list per hidden layer, each strictly increasing within the layer's width.
    func removeNeurons(keeping kept: [[Int]]) {
        precondition(kept.count == layers.count - 1, "Chain.removeNeurons: \(kept.count) lists for \(layers.count - 1) hidden layers")
        for (l, k) in kept.enumerated() {
            precondition(zip(k, k.dropFirst()).allSatisfy { $0 < $1 } && (k.first ?? 0) >= 0
                         && (k.last ?? -1) < layers[l].outputSize,
                         "Chain.removeNeurons: layer \(l) keeps \(k), expected increasing indices below \(layers[l].outputSize)")
        }
        var newLayers: [Dense] = []
        for (l, layer) in layers.enumerated() {
            let rows = l < kept.count ? kept[l] : Array(0..<layer.outputSize)
            let columns = l == 0 ? Array(0..<layer.inputSize) : kept[l - 1]
            func select(_ m: Matrix) -> Matrix {
                var out = Matrix(rows: rows.count, columns: columns.count)
                for (i, r) in rows.enumerated() {
                    for (j, c) in columns.enumerated() { out.storage[i * columns.count + j] = m.storage[r * m.columns + c] }
                }
                return out
            }
            let bias = rows.map { layer.bias[$0] }
            newLayers.append(Dense(checkedWeight: select(layer.weight), bias: bias, activation: layer.activation,
                                   mask: layer.mask.map(select), biasMask: layer.biasMask.map { m in rows.map { m[$0] } }))
        }
        layers = newLayers
    }
}
