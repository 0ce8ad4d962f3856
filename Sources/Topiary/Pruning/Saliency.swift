/// How important each weight is: the article's *saliency*. Lower saliency is pruned first.
///
/// A saliency is a value that combines with any ``PruningScope`` and any ``PruningSchedule``.
/// It maps a network to one score per weight of every ``PrunableDense`` layer (in the order of
/// ``Chain/prunableLayers``, each array row-major `[out, in]` as the weight). Scores at
/// already-pruned positions are ignored. Biases are never pruned.
///
/// ```swift
/// let pruner = Pruner(saliency: .magnitude, scope: .global)
/// try pruner.prune(network, to: 0.9)
/// let control = Pruner(saliency: .random(seed: 0), scope: .global)
/// let taylor = Saliency.taylor(data: dataset.train, batchCount: 10)
/// let custom = Saliency(name: "squared") { net in net.prunableLayers.map { $0.weight.storage.map { $0 * $0 } } }
/// ```
public struct Saliency {
    /// A short name for logs and JSON (`magnitude`, `random(0)`, `taylor(10×128)`).
    public let name: String
    private let body: (Chain) throws -> [[Float]]
    /// Whether this is ``magnitude``, which ``Pruner`` reads straight from the weights.
    let isMagnitude: Bool

    /// A saliency from a closure returning one score array per prunable layer.
    ///
    /// The closure must return `network.prunableLayers.count` arrays, each with as many scores as
    /// the layer has weights; NaN scores count as the lowest saliency.
    public init(name: String = "custom", _ scores: @escaping (Chain) throws -> [[Float]]) {
        self.name = name
        self.body = scores
        self.isMagnitude = false
    }

    private init(magnitude: Void) {
        name = "magnitude"
        body = { network in network.prunableLayers.map { layer in layer.weight.storage.map { abs($0) } } }
        isMagnitude = true
    }

    /// The scores for `network`, one array per prunable layer.
    ///
    /// - Throws: whatever the closure throws; `invalidShape` when it returns arrays of the wrong sizes.
    public func scores(for network: Chain) throws -> [[Float]] {
        let s = try body(network)
        let layers = network.prunableLayers
        guard s.count == layers.count else {
            throw TopiaryError(.invalidShape, "saliency \(name) returned \(s.count) score arrays, the network has \(layers.count) prunable layers")
        }
        for (l, (scores, layer)) in zip(s, layers).enumerated() where scores.count != layer.weight.count {
            throw TopiaryError(.invalidShape, "saliency \(name) returned \(scores.count) scores for prunable layer \(l), which has \(layer.weight.count) weights")
        }
        return s
    }

    /// Magnitude `|w|`: the article's saliency (Han et al. 2015).
    ///
    /// - Complexity: O(weights).
    public static let magnitude = Saliency(magnitude: ())

    /// Uniform random scores: the control every pruning study needs.
    ///
    /// The scores depend only on `seed` and the layer's position, not on the weights nor on the
    /// call, so iterative pruning with this saliency removes weights in one fixed random order.
    public static func random(seed: UInt64) -> Saliency {
        Saliency(name: "random(\(seed))") { network in
            network.prunableLayers.enumerated().map { l, layer in
                var rng = SeededRandom(seed: seed &+ UInt64(l) &* 0xD1B5_4A32_D192_ED03)
                return (0..<layer.weight.count).map { _ in rng.nextUniform() }
            }
        }
    }

    /// First-order Taylor saliency `|w · ∂L/∂w|`, averaged over `batchCount` batches:
    /// `score(w) = (1/N) Σ_b |w · ∂L_b/∂w|` (Molchanov et al. 2017, in its per-weight form).
    ///
    /// Batches are drawn from `data` in a shuffle seeded by `seed`; gradients come from
    /// ``Chain/forward(_:batch:workspace:)`` and ``Chain/backward(_:batch:workspace:)``, no
    /// optimizer step is taken, so the network's parameters are unchanged (its gradients are
    /// overwritten).
    ///
    /// Absolute values are taken per batch because a trained network's mean gradient is close to
    /// zero; the per-batch form measures how much each weight moves the loss.
    /// - Complexity: `batchCount` forward and backward passes.
    public static func taylor(data: LabeledData, batchCount: Int = 10, batchSize: Int = 128,
                              loss: Loss = .softmaxCrossEntropy, seed: UInt64 = 0) -> Saliency {
        Saliency(name: "taylor(\(batchCount)×\(batchSize))") { network in
            guard batchCount > 0, batchSize > 0 else {
                throw TopiaryError(.invalidOption, "Taylor saliency needs a positive batch count and size, got \(batchCount) × \(batchSize)")
            }
            guard !data.isEmpty else { throw TopiaryError(.invalidOption, "Taylor saliency needs data, got none") }
            guard data.featureCount == network.inputSize else {
                throw TopiaryError(.invalidShape, "Taylor saliency: data has \(data.featureCount) features, the network expects \(network.inputSize)")
            }
            let layers = network.prunableLayers
            var sums = layers.map { [Float](repeating: 0, count: $0.weight.count) }
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
                }
            }
            let scale = 1 / Float(max(1, n))
            return sums.map { $0.map { $0 * scale } }
        }
    }

    /// A saliency computed layer by layer: `scores(l, layer)` returns one score per weight of
    /// prunable layer `l`.
    ///
    /// ```swift
    /// let squared = Saliency.perLayer(name: "w²") { _, layer in layer.weight.storage.map { $0 * $0 } }
    /// ```
    public static func perLayer(name: String = "custom",
                                _ scores: @escaping (Int, PrunableDense) throws -> [Float]) -> Saliency {
        Saliency(name: name) { network in
            try network.prunableLayers.enumerated().map { try scores($0.offset, $0.element) }
        }
    }
}
