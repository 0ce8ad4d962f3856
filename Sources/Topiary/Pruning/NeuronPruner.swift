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
///   ranking uses scores comparable across layers (`comparableScores(_:)`): the mean absolute
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
    /// Calibration samples (the training split, never validation or test) for least-squares
    /// repair after each removal; `nil` (the default) for none.
    ///
    /// With samples, every layer after a hidden layer is re-fitted, in order, on its inputs `X′` in
    /// the pruned network (earlier layers already repaired), so that its kept neurons reproduce
    /// the unpruned network's on these samples. Weights and bias `S = [W; b]ᵀ` minimise
    /// `‖[X′, 1]·S − T‖²/n + λ·mean(diag)·‖S‖²` (normal equations, `ssyrk`, then `spotrf` and
    /// `spotrs`; `λ` is `repairDamping`, 1% by default). For a layer without ReLU (the output
    /// layer) `T` is the original pre-activations `Z`. For a ReLU layer only its outputs
    /// `max(0, Z)` matter, so `T` is free wherever `Z ≤ 0` as long as it stays `≤ 0` (the convex
    /// program of Net-Trim, Aghasi et al. 2017): starting from the plain fit, `S` and `T` are
    /// minimised in turn (`T = Z` where `Z > 0`, else `min(0, X′·S)`), each step lowering the
    /// objective, until it falls by less than 10⁻⁵ of itself (at most 200 rounds). Pruned weights
    /// and biases stay pruned: a masked row is solved on its kept entries only. The idea is that
    /// of Optimal Brain Surgeon (Hassibi & Stork 1993) applied to whole neurons, as in Frantar &
    /// Alistarh 2022's layer-wise reconstruction and ThiNet's (Luo et al. 2017) least-squares
    /// re-weighting.
    public var repair: LabeledData?
    /// Dampening of the repair's normal equations, a fraction of their mean diagonal (0.01, as
    /// ``Saliency/obs(data:calibrationSamples:damping:globalBudget:)``'s); not API.
    @_spi(Kernels) public var repairDamping: Double = NeuronPruner.defaultRepairDamping

    /// Creates a neuron pruner.
    public init(criterion: NeuronCriterion = .l1, layerFractions: [Double]? = nil, scope: PruningScope = .layerwise,
                repair: LabeledData? = nil) {
        self.criterion = criterion
        self.layerFractions = layerFractions
        self.scope = scope
        self.repair = repair
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
        if let repair {
            guard !repair.isEmpty else { throw TopiaryError(.invalidOption, "least-squares repair needs calibration samples, got none") }
            guard repairDamping.isFinite, repairDamping >= 0 else {
                throw TopiaryError(.invalidOption, "least-squares repair: dampening must be a finite fraction at least 0, got \(repairDamping)")
            }
            try repair.check(against: network, source: "least-squares repair data")
            let original = network.copy()
            network.removeNeurons(keeping: kept)
            try Self.repairLeastSquares(network, original: original, kept: kept, inputs: repair.images, damping: repairDamping)
        } else {
            network.removeNeurons(keeping: kept)
        }
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

extension NeuronPruner {
    /// The default dampening of the least-squares repair, a fraction of the mean diagonal of its
    /// normal equations (the 1% of OBS's).
    static let defaultRepairDamping = 0.01
    /// Rounds of the ReLU fit at most, and the relative fall of its objective that ends it sooner.
    static let rectifiedRounds = 200, rectifiedTolerance = 1e-5

    /// Re-fits every layer after the first of `network` (already smaller) so that on `inputs` its
    /// kept neurons match those of `original`: pre-activations, or outputs for ReLU layers.
    static func repairLeastSquares(_ network: Chain, original: Chain, kept: [[Int]], inputs: Matrix,
                                   damping: Double = defaultRepairDamping) throws {
        var reference = inputs   // the input of original layer l
        var current = inputs     // the input of pruned layer l
        for (l, layer) in network.layers.enumerated() {
            let source = original.layers[l]
            if l > 0 {
                // Original pre-activations of the kept neurons.
                let linear = Dense(checkedWeight: source.weight, bias: source.bias)
                let z = try linear.predict(reference)
                let rows = l < kept.count ? kept[l] : Array(0..<source.outputSize)
                var target = Matrix(rows: z.rows, columns: rows.count)
                for n in 0..<z.rows { for (j, r) in rows.enumerated() { target.storage[n * rows.count + j] = z.storage[n * z.columns + r] } }
                try refit(layer, inputs: current, targets: target, damping: damping, rectified: layer.activation == .relu)
            }
            reference = try source.predict(reference)
            if l + 1 < network.layers.count { current = try layer.predict(current) }
        }
    }

    /// Solves `layer`'s weights and bias `S = [W; b]ᵀ` for `min ‖[X, 1]·S − T‖²/n + λ·mean(diag)·‖S‖²`,
    /// keeping pruned entries at zero: `T = Z`, or with `rectified` the best `T` that agrees with
    /// `Z` after a ReLU (see ``NeuronPruner/repair``). Returns the rounds of the ReLU fit (0 without).
    @discardableResult
    static func refit(_ layer: Dense, inputs x: Matrix, targets z: Matrix, damping: Double = defaultRepairDamping,
                      rectified: Bool = false) throws -> Int {
        let (n, d, m) = (x.rows, x.columns, z.columns)
        var a = Matrix(rows: n, columns: d + 1)
        for r in 0..<n {
            for c in 0..<d { a.storage[r * (d + 1) + c] = x.storage[r * d + c] }
            a.storage[r * (d + 1) + d] = 1
        }
        var g = BLAS.gram(a, alpha: 1 / Float(n))
        let mean = (0...d).reduce(0.0) { $0 + Double(g.storage[$1 * (d + 1) + $1]) } / Double(d + 1)
        let lambda = Float(damping * mean)
        for i in 0...d { g.storage[i * (d + 1) + i] += lambda }
        // One factorisation per distinct set of free entries: the whole Gram matrix, or a masked
        // row's kept entries (its sub-matrix).
        let mask = layer.isPruned ? layer.mask?.storage : nil, biasMask = layer.isPruned ? layer.biasMask : nil
        let free: [[Int]]? = layer.isPruned ? (0..<m).map { j in
            var idx = (0..<d).filter { mask?[j * d + $0] != 0 }
            if biasMask?[j] != 0 { idx.append(d) }
            return idx
        } : nil
        let factor: Matrix? = free == nil ? try BLAS.cholesky(g, upper: true) : nil
        let rowFactors: [Matrix?] = try (free ?? []).map { idx in
            guard !idx.isEmpty else { return nil }
            let k = idx.count
            var sub = Matrix(rows: k, columns: k)
            for (p, ip) in idx.enumerated() { for (q, iq) in idx.enumerated() { sub.storage[p * k + q] = g.storage[ip * (d + 1) + iq] } }
            return try BLAS.cholesky(sub, upper: true)
        }
        /// The solution `[d + 1, m]` for the targets `t` `[n, m]`, zero at pruned entries.
        func solve(_ t: Matrix) throws -> Matrix {
            let rhs = BLAS.matmul(a, .transpose, t, .none, alpha: 1 / Float(n))   // [d + 1, m]
            if let factor { return try BLAS.solveFactored(factor, rhs) }
            var s = Matrix(rows: d + 1, columns: m)
            for (j, idx) in (free ?? []).enumerated() {
                guard let u = rowFactors[j] else { continue }
                var b = Matrix(rows: idx.count, columns: 1)
                for (p, ip) in idx.enumerated() { b.storage[p] = rhs.storage[ip * m + j] }
                let sj = try BLAS.solveFactored(u, b)
                for (p, ip) in idx.enumerated() { s.storage[ip * m + j] = sj.storage[p] }
            }
            return s
        }
        var s = try solve(z)
        var rounds = 0
        if rectified {
            var previous = Double.infinity
            while rounds < rectifiedRounds {
                // The best targets for this S, and the objective they give.
                var t = BLAS.matmul(a, .none, s, .none)   // [n, m] predictions
                var residual = 0.0
                for i in 0..<t.count {
                    let p = t.storage[i], zi = z.storage[i]
                    let ti = zi > 0 ? zi : min(p, 0)
                    residual += Double(p - ti) * Double(p - ti)
                    t.storage[i] = ti
                }
                let objective = residual / Double(n) + Double(lambda) * s.storage.reduce(0.0) { $0 + Double($1) * Double($1) }
                if previous.isFinite, previous - objective <= rectifiedTolerance * previous { break }
                previous = objective
                s = try solve(t)
                rounds += 1
            }
        }
        var weight = Matrix(rows: m, columns: d)
        var bias = [Float](repeating: 0, count: m)
        for j in 0..<m {
            for c in 0..<d { weight.storage[j * d + c] = s.storage[c * m + j] }
            bias[j] = s.storage[d * m + j]
        }
        try layer.setParameters(weight: weight, bias: bias)
        return rounds
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
