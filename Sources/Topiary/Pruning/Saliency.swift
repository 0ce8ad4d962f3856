/// How important each weight (and, when biases are pruned, each bias) is: the article's
/// *saliency*. Lower saliency is pruned first.
///
/// A saliency is a value that combines with any ``PruningScope`` and any ``PruningSchedule``.
/// It maps a network to one score per weight of every layer (in the order of
/// ``Chain/layers``, each array row-major `[out, in]` as the weight). Scores at
/// already-pruned positions are ignored. Biases are not pruned by default; a ``Pruner`` with
/// ``Pruner/includeBiases`` also asks for one score per bias, which the built-in saliencies give
/// (``magnitude`` `|b|`, ``random(seed:)``, ``taylor(data:batchCount:batchSize:loss:seed:)``
/// `|b·∂L/∂b|`) and a custom one gives when it is made with
/// ``init(name:weights:biases:)``.
///
/// ```swift
/// let pruner = Pruner(saliency: .magnitude, scope: .global)
/// try pruner.prune(network, to: 0.9)
/// let control = Pruner(saliency: .random(seed: 0), scope: .global)
/// let taylor = Saliency.taylor(data: dataset.train, batchCount: 10)
/// let custom = Saliency(name: "squared") { net in net.layers.map { $0.weight.storage.map { $0 * $0 } } }
/// ```
public struct Saliency {
    /// Scores for the weights and, when asked for, the biases of every prunable layer.
    typealias Scores = (weights: [[Float]], biases: [[Float]]?)

    /// A short name for logs and JSON (`magnitude`, `random(0)`, `taylor(10×128)`).
    public let name: String
    /// The scores for a network; the flag asks for bias scores too.
    private let body: (Chain, Bool) throws -> Scores
    /// Whether this saliency can score biases.
    let scoresBiases: Bool
    /// Whether this is ``magnitude``, which ``Pruner`` reads straight from the parameters.
    let isMagnitude: Bool
    /// The configuration of ``obs(data:calibrationSamples:damping:)``, whose pruning step also
    /// rewrites the kept weights; `nil` for every other saliency.
    let secondOrder: SecondOrder?

    /// A saliency from a closure returning one score array per prunable layer.
    ///
    /// The closure must return `network.layers.count` arrays, each with as many scores as
    /// the layer has weights; NaN scores count as the lowest saliency. Such a saliency does not
    /// score biases: use ``init(name:weights:biases:)`` for a pruner that includes them.
    public init(name: String = "custom", _ scores: @escaping (Chain) throws -> [[Float]]) {
        self.name = name
        self.body = { network, _ in (try scores(network), nil) }
        self.scoresBiases = false
        self.isMagnitude = false
        self.secondOrder = nil
    }

    /// A saliency from two closures: one score array per prunable layer for the weights (as
    /// ``init(name:_:)``), and one per prunable layer for the biases (one score per output).
    ///
    /// ```swift
    /// let squared = Saliency(name: "squared",
    ///                        weights: { net in net.layers.map { $0.weight.storage.map { $0 * $0 } } },
    ///                        biases: { net in net.layers.map { $0.bias.map { $0 * $0 } } })
    /// ```
    public init(name: String = "custom", weights: @escaping (Chain) throws -> [[Float]],
                biases: @escaping (Chain) throws -> [[Float]]) {
        self.name = name
        self.body = { network, withBiases in (try weights(network), withBiases ? try biases(network) : nil) }
        self.scoresBiases = true
        self.isMagnitude = false
        self.secondOrder = nil
    }

    private init(name: String, isMagnitude: Bool = false, body: @escaping (Chain, Bool) throws -> Scores) {
        self.name = name
        self.body = body
        self.scoresBiases = true
        self.isMagnitude = isMagnitude
        self.secondOrder = nil
    }

    private init(secondOrder: SecondOrder, name: String) {
        self.name = name
        self.body = { network, _ in (try secondOrder.scores(for: network), nil) }
        self.scoresBiases = false
        self.isMagnitude = false
        self.secondOrder = secondOrder
    }

    /// The scores for `network`, one array per prunable layer.
    ///
    /// - Throws: whatever the closure throws; `invalidShape` when it returns arrays of the wrong sizes.
    func scores(for network: Chain) throws -> [[Float]] {
        try scores(for: network, includingBiases: false).weights
    }

    /// The bias scores for `network`, one array per prunable layer with one score per output.
    ///
    /// - Throws: `invalidOption` when this saliency does not score biases (``scoresBiases``);
    ///   whatever the closures throw; `invalidShape` when they return arrays of the wrong sizes.
    func biasScores(for network: Chain) throws -> [[Float]] {
        try scores(for: network, includingBiases: true).biases ?? []
    }

    /// The weight scores, and the bias scores when `includingBiases`, checked against the network.
    func scores(for network: Chain, includingBiases: Bool) throws -> Scores {
        if includingBiases, !scoresBiases {
            throw TopiaryError(.invalidOption, "saliency \(name) does not score biases; make it with Saliency(name:weights:biases:) to prune biases")
        }
        let s = try body(network, includingBiases)
        let layers = network.layers
        guard s.weights.count == layers.count else {
            throw TopiaryError(.invalidShape, "saliency \(name) returned \(s.weights.count) score arrays, the network has \(layers.count) prunable layers")
        }
        for (l, (scores, layer)) in zip(s.weights, layers).enumerated() where scores.count != layer.weight.count {
            throw TopiaryError(.invalidShape, "saliency \(name) returned \(scores.count) scores for prunable layer \(l), which has \(layer.weight.count) weights")
        }
        guard includingBiases else { return (s.weights, nil) }
        guard let biases = s.biases, biases.count == layers.count else {
            throw TopiaryError(.invalidShape, "saliency \(name) returned \(s.biases?.count ?? 0) bias score arrays, the network has \(layers.count) prunable layers")
        }
        for (l, (scores, layer)) in zip(biases, layers).enumerated() where scores.count != layer.bias.count {
            throw TopiaryError(.invalidShape, "saliency \(name) returned \(scores.count) bias scores for prunable layer \(l), which has \(layer.bias.count) biases")
        }
        return (s.weights, biases)
    }

    /// Magnitude `|w|` (and `|b|` for biases): the article's saliency (Han et al. 2015).
    ///
    /// - Complexity: O(parameters).
    public static let magnitude = Saliency(name: "magnitude", isMagnitude: true) { network, withBiases in
        (network.layers.map { layer in layer.weight.storage.map { abs($0) } },
         withBiases ? network.layers.map { layer in layer.bias.map { abs($0) } } : nil)
    }

    /// Uniform random scores: the control every pruning study needs.
    ///
    /// The scores depend only on `seed` and the layer's position, not on the weights nor on the
    /// call, so iterative pruning with this saliency removes weights in one fixed random order.
    /// Bias scores come from a separate generator, so including biases leaves the weight scores
    /// unchanged.
    public static func random(seed: UInt64) -> Saliency {
        Saliency(name: "random(\(seed))") { network, withBiases in
            let layers = network.layers
            let weights = layers.enumerated().map { l, layer in
                var rng = SeededRandom(seed: seed &+ UInt64(l) &* 0xD1B5_4A32_D192_ED03)
                return (0..<layer.weight.count).map { _ in rng.nextUniform() }
            }
            guard withBiases else { return (weights, nil) }
            let biases = layers.enumerated().map { l, layer in
                var rng = SeededRandom(seed: (seed &+ UInt64(l) &* 0xD1B5_4A32_D192_ED03) ^ 0x8CB9_2BA7_2F3D_8DD7)
                return (0..<layer.bias.count).map { _ in rng.nextUniform() }
            }
            return (weights, biases)
        }
    }

    /// First-order Taylor saliency `|w · ∂L/∂w|`, averaged over `batchCount` batches:
    /// `score(w) = (1/N) Σ_b |w · ∂L_b/∂w|` (Molchanov et al. 2017, in its per-weight form);
    /// for biases, `(1/N) Σ_b |b · ∂L_b/∂b|` from the same passes.
    ///
    /// Batches are drawn from `data` in a shuffle seeded by `seed`; gradients come from
    /// `Chain.forward(_:batch:workspace:)` and `Chain.backward(_:batch:workspace:)`, no
    /// optimizer step is taken, so the network's parameters are unchanged (its gradients are
    /// overwritten).
    ///
    /// Absolute values are taken per batch because a trained network's mean gradient is close to
    /// zero; the per-batch form measures how much each weight moves the loss.
    /// - Complexity: `batchCount` forward and backward passes.
    public static func taylor(data: LabeledData, batchCount: Int = 10, batchSize: Int = 128,
                              loss: Loss = .softmaxCrossEntropy, seed: UInt64 = 0) -> Saliency {
        Saliency(name: "taylor(\(batchCount)×\(batchSize))") { network, withBiases in
            guard batchCount > 0, batchSize > 0 else {
                throw TopiaryError(.invalidOption, "Taylor saliency needs a positive batch count and size, got \(batchCount) × \(batchSize)")
            }
            guard !data.isEmpty else { throw TopiaryError(.invalidOption, "Taylor saliency needs data, got none") }
            try data.check(against: network, source: "Taylor saliency: the data")
            let layers = network.layers
            var sums = layers.map { [Float](repeating: 0, count: $0.weight.count) }
            var biasSums = layers.map { [Float](repeating: 0, count: withBiases ? $0.bias.count : 0) }
            var batches = Batches(data, batchSize: min(batchSize, data.count))
            batches.shuffle(seed: seed, epoch: 0)
            var workspace = Chain.Workspace(for: network, batchCapacity: batches.batchSize)
            let n = min(batchCount, batches.batchCount)
            for b in 0..<n {
                batches.withBatch(b) { x, labels, size in
                    let y = network.forward(x, batch: size, workspace: &workspace)
                    loss.evaluate(output: y, labels: labels, batch: size, classes: network.outputSize,
                                  gradient: workspace.outputGradient)
                    network.backward(x, batch: size, workspace: &workspace)
                }
                for (l, layer) in layers.enumerated() {
                    sums[l].withUnsafeMutableBufferPointer { s in
                        layer.weight.storage.withUnsafeBufferPointer { w in
                            layer.weightGradient.storage.withUnsafeBufferPointer { g in
                                for i in 0..<s.count { s[i] += abs(w[i] * g[i]) }
                            }
                        }
                    }
                    if withBiases {
                        let g = layer.biasGradient
                        for j in 0..<biasSums[l].count { biasSums[l][j] += abs(layer.bias[j] * g[j]) }
                    }
                }
            }
            let scale = 1 / Float(max(1, n))
            return (sums.map { $0.map { $0 * scale } }, withBiases ? biasSums.map { $0.map { $0 * scale } } : nil)
        }
    }

    /// Optimal Brain Surgeon with weight reconstruction (LeCun et al. 1990; Hassibi & Stork 1993),
    /// layer by layer with SparseGPT's column-block algorithm (Frantar & Alistarh 2022, 2023): a
    /// pruning step with this saliency removes, in each layer, the weights whose removal changes
    /// the layer's output on calibration data least, and updates the layer's surviving weights to
    /// compensate, so that one-shot pruning needs no fine-tuning to stay accurate.
    ///
    /// For each prunable layer, `H = 2·XᵀX/n + λ·mean(diag)·I` is accumulated (`ssyrk`) from the
    /// layer's inputs `X` on the first `calibrationSamples` images of `data` (pass the training
    /// split, never validation or test), with the layers before it already pruned. With `U` the
    /// upper Cholesky factor of `H⁻¹` (`spotrf`, `spotri`), the columns are visited in order, in
    /// groups of 8: in each group the kept weights with the lowest `w² / U_qq²` (as updated so
    /// far) are removed, and every removed weight's error `w_q / U_qq` is propagated to the columns
    /// not yet visited (`−(w_q / U_qq) · U[q, q+1…]`: `sger` within blocks of 128 columns, one
    /// `sgemm` per block for the rest), which is the closed-form OBS update
    /// `δw = −(w_q / [H⁻¹]_qq) · H⁻¹[:, q]` over those columns.
    ///
    /// Budgets: the number pruned in each layer is what magnitude pruning with the pruner's
    /// ``PruningScope`` would remove there (as SparseGPT is used; see `globalBudget` for the
    /// alternative), so counts are exact and
    /// protection and caps apply; within a layer the budget is split over the column groups as the
    /// layer's lowest `w² / U_qq²` fall before any update. Masks only shrink, pruned weights are exactly zero,
    /// biases are untouched (this saliency does not score biases). Combined with any schedule and
    /// fine-tuning policy of ``IterativePruner``, each step reconstructs from the current weights.
    ///
    /// Used where plain scores are asked for (a sensitivity analysis), it gives the OBS saliency
    /// `w_q² / [H⁻¹]_qq` of the network as it is, without reconstruction.
    ///
    /// - Parameters:
    ///   - data: calibration samples (the training split).
    ///   - calibrationSamples: how many of the first samples of `data` to use (default 2,048).
    ///   - damping: `λ`, a fraction of the mean diagonal of `H` (default 0.01); `0` only for
    ///     inputs of full rank, else pruning throws ``TopiaryError/Kind/invalidOption`` (singular `H`).
    ///   - globalBudget: `false` (the default) for per-layer counts from magnitude; `true` for
    ///     counts from the OBS errors `w_q² / [H⁻¹]_qq` of all layers ranked together with the
    ///     pruner's scope (errors in each layer's own output units, so layers with large outputs
    ///     keep more).
    /// - Complexity: one forward pass of the calibration samples, `O(n·in²)` for each `H`, `O(in³)` for
    ///   the factorisations and `O(out·in²)` for the reconstruction of each layer.
    public static func obs(data: LabeledData, calibrationSamples: Int = 2048, damping: Double = 0.01,
                           globalBudget: Bool = false) -> Saliency {
        let samples = max(0, calibrationSamples)
        var config = SecondOrder(data: data.prefix(min(samples, data.count)), damping: damping)
        config.globalBudget = globalBudget
        return Saliency(secondOrder: config, name: "obs(\(min(samples, data.count)); damping \(damping)\(globalBudget ? "; global budget" : ""))")
    }
}
