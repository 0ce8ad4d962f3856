/// One pruning step: a ``Saliency`` and a ``PruningScope`` turned into masks, with exact counts.
///
/// Pruning to sparsity `s` leaves exactly `n − round(s·n)` non-zero weights out of `n`: per layer
/// for layerwise and per-layer scopes, over all prunable layers together for the global scope
/// (see ``PruningScope`` for protection and caps). Among the weights still kept, the lowest
/// saliencies are pruned; ties go to the lower prunable-layer index, then the lower flat index
/// (row-major in `[out, in]`), being pruned first (``PruningSelection``). Masks only shrink: a
/// pruned weight stays pruned, so a target below the current sparsity prunes nothing.
///
/// ```swift
/// let network = try Model.load(from: "dense.safetensors").network
/// let pruner = Pruner(saliency: .magnitude, scope: .global)
/// let step = try pruner.prune(network, to: 0.9)
/// network.sparsity          // 0.9 (exactly 239,580 of 266,200 weights are zero)
/// ```
public struct Pruner {
    /// How important each weight is.
    public var saliency: Saliency
    /// Where the target applies.
    public var scope: PruningScope

    /// Creates a pruner.
    public init(saliency: Saliency = .magnitude, scope: PruningScope = .global) {
        self.saliency = saliency
        self.scope = scope
    }

    /// What one pruning step did.
    public struct Step: Sendable, Equatable {
        /// The requested overall sparsity.
        public var target: Double
        /// Weights per prunable layer.
        public var layerWeights: [Int]
        /// Weights pruned per prunable layer after the step (masked out).
        public var layerPruned: [Int]
        /// Weights newly pruned by this step, per prunable layer.
        public var newlyPruned: [Int]
        /// Seconds spent (saliency and selection).
        public var seconds: Double

        /// The fraction of prunable weights masked out after the step.
        public var sparsity: Double {
            let n = layerWeights.reduce(0, +)
            return n == 0 ? 0 : Double(layerPruned.reduce(0, +)) / Double(n)
        }
        /// The per-layer sparsities after the step.
        public var layerSparsity: [Double] {
            zip(layerPruned, layerWeights).map { $1 == 0 ? 0 : Double($0) / Double($1) }
        }
    }

    /// Prunes `network` in place to overall sparsity `sparsity`.
    ///
    /// - Throws: `invalidOption` when `sparsity` is outside `[0, 1]`, the scope does not fit the
    ///   network, or protection and caps make the target unreachable; the saliency's errors.
    /// - Complexity: O(n) in the number of prunable weights, plus the saliency's cost. The magnitude
    ///   saliency is read straight from the weights, without materialising scores.
    @discardableResult
    public func prune(_ network: Chain, to sparsity: Double) throws -> Step {
        let clock = ContinuousClock()
        let start = clock.now
        guard sparsity.isFinite, (0...1).contains(sparsity) else {
            throw TopiaryError(.invalidOption, "target sparsity must be in [0, 1], got \(sparsity)")
        }
        let layers = network.prunableLayers
        try scope.validate(layerCount: layers.count)
        let sizes = layers.map(\.weight.count)
        guard sizes.reduce(0, +) < Int(UInt32.max) else {
            throw TopiaryError(.invalidShape, "more than 2³² prunable weights are not supported")
        }
        let before = layers.map { $0.weight.count - $0.keptCount }
        if saliency.isMagnitude {
            try prune(layers, to: sparsity, sizes: sizes, before: before, source: MagnitudeScores(layers: layers))
        } else {
            let scores = try saliency.scores(for: network)
            try prune(layers, to: sparsity, sizes: sizes, before: before, source: ComputedScores(scores: scores))
        }
        let after = layers.map { $0.weight.count - $0.keptCount }
        return Step(target: sparsity, layerWeights: sizes, layerPruned: after,
                    newlyPruned: zip(after, before).map { $0 - $1 },
                    seconds: (clock.now - start).seconds)
    }

    private func prune<S: ScoreSource>(_ layers: [PrunableDense], to sparsity: Double, sizes: [Int], before: [Int],
                                       source: S) throws {
        let selection = Selection(layers: layers, sizes: sizes, source: source)
        if let targets = try scope.layerTargets(at: sparsity, layerSizes: sizes) {
            for l in layers.indices {
                guard let t = targets[l] else { continue }
                let m = Int((t * Double(sizes[l])).rounded()) - before[l]
                if m > 0 { selection.pruneLowest(m, in: [l]) }
            }
            return
        }
        // Global, with protected and capped layers: select over the pool of free layers; any layer
        // that would exceed its cap is held at the cap and taken out of the pool, then repeat.
        let goal = Int((sparsity * Double(sizes.reduce(0, +))).rounded())
        let capCount = sizes.indices.map { l -> Int in
            if scope.protectedLayers.contains(l) { return before[l] }
            guard let cap = scope.sparsityCaps[l] else { return sizes[l] }
            return max(before[l], Int((cap * Double(sizes[l])).rounded()))
        }
        var held = Set(scope.protectedLayers)
        while true {
            let pool = layers.indices.filter { !held.contains($0) }
            let m = goal - held.reduce(0) { $0 + capCount[$1] } - pool.reduce(0) { $0 + before[$1] }
            let poolKept = pool.reduce(0) { $0 + layers[$1].keptCount }
            if m > poolKept {
                throw TopiaryError(.invalidOption, "sparsity \(sparsity) cannot be reached: protected and capped layers leave only \(poolKept) weights to prune, \(m) needed")
            }
            let threshold = selection.threshold(m, in: pool)
            var over: [Int] = []
            if let threshold, pool.contains(where: { capCount[$0] < sizes[$0] }) {
                let counts = selection.count(threshold, in: pool)
                over = pool.filter { before[$0] + counts[$0] > capCount[$0] }
            }
            if over.isEmpty {
                if let threshold { selection.apply(threshold, in: pool) }
                for l in held where !scope.protectedLayers.contains(l) && capCount[l] > before[l] {
                    selection.pruneLowest(capCount[l] - before[l], in: [l])
                }
                return
            }
            held.formUnion(over)
        }
    }
}

/// Where a selection reads the saliency of weight `i` of prunable layer `l`.
private protocol ScoreSource {
    /// Calls `body` with layer `l`'s raw values and returns its result.
    func withValues<R>(_ l: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R
    /// The saliency of a raw value.
    static func score(_ value: Float) -> Float
    /// Whether the raw values are the layer's weights (then pruning reads them as it writes).
    static var readsWeights: Bool { get }
}

/// Magnitude: the weights themselves, `|w|`; no score array is built.
private struct MagnitudeScores: ScoreSource {
    let layers: [PrunableDense]
    func withValues<R>(_ l: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        layers[l].weight.storage.withUnsafeBufferPointer(body)
    }
    static func score(_ value: Float) -> Float { abs(value) }
    static var readsWeights: Bool { true }
}

/// Scores computed by a ``Saliency``.
private struct ComputedScores: ScoreSource {
    let scores: [[Float]]
    func withValues<R>(_ l: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        scores[l].withUnsafeBufferPointer(body)
    }
    static func score(_ value: Float) -> Float { value }
    static var readsWeights: Bool { false }
}

/// Exact-k selection over the kept weights of some layers (see ``PruningSelection``).
private struct Selection<Source: ScoreSource> {
    let layers: [PrunableDense]
    let offsets: [Int]
    let source: Source

    init(layers: [PrunableDense], sizes: [Int], source: Source) {
        self.layers = layers
        self.source = source
        var offsets = [Int](repeating: 0, count: sizes.count)
        for l in 1..<max(1, sizes.count) { offsets[l] = offsets[l - 1] + sizes[l - 1] }
        self.offsets = offsets
    }

    /// The largest order key among the `m` lowest kept weights of `pool`, or `nil` when `m == 0`.
    ///
    /// Floyd–Rivest style: the saliency keys of a strided sample give a narrow window that should
    /// hold the `m`-th lowest; one pass counts the keys below the window and gathers those inside,
    /// which are then radix-selected. If the window misses (it cannot for most data, but may for
    /// adversarial ties), a histogram of the top 16 key bits finds the bucket instead. Either way
    /// the answer is exact, and no key array of the whole network is built.
    func threshold(_ m: Int, in pool: [Int]) -> UInt64? {
        guard m > 0 else { return nil }
        let total = pool.reduce(0) { $0 + layers[$1].keptCount }
        precondition(m <= total, "Pruner: asked to prune \(m) of \(total) candidates")
        if total >= 1 << 14, let t = windowThreshold(m, in: pool, kept: total) { return t }
        return histogramThreshold(m, in: pool)
    }

    /// The sampled-window selection, or `nil` when the window misses.
    private func windowThreshold(_ m: Int, in pool: [Int], kept total: Int) -> UInt64? {
        let all = pool.reduce(0) { $0 + layers[$1].weight.count }
        let sampleCount = 4096
        let step = max(1, all / sampleCount)
        var sample: [UInt32] = []
        sample.reserveCapacity(sampleCount + pool.count)
        var position = 0   // over the concatenation of the pool's layers
        for l in pool {
            let n = layers[l].weight.count
            layers[l].mask.storage.withUnsafeBufferPointer { mask in
                source.withValues(l) { v in
                    var i = (step - position % step) % step
                    while i < n {
                        if mask[i] != 0 { sample.append(PruningSelection.orderKey(Source.score(v[i]))) }
                        i += step
                    }
                }
            }
            position += n
        }
        guard sample.count >= 256 else { return nil }
        sample.sort()
        let rank = Int(Double(m) / Double(total) * Double(sample.count))
        let slack = max(32, sample.count / 64)
        let lo = rank - slack <= 0 ? 0 : sample[rank - slack]
        let hi = rank + slack >= sample.count ? UInt32.max : sample[rank + slack]
        var below = 0
        var window: [UInt64] = []
        window.reserveCapacity(4 * total * (2 * slack + 1) / sample.count + 64)
        for l in pool {
            let offset = offsets[l]
            layers[l].mask.storage.withUnsafeBufferPointer { mask in
                source.withValues(l) { v in
                    var count = 0
                    for i in 0..<mask.count {
                        let kept = mask[i].bitPattern >> 29 & 1   // mask entries are 0 or 1.0
                        let k = PruningSelection.orderKey(Source.score(v[i]))
                        count &+= Int(kept & (k < lo ? 1 : 0))
                        if kept != 0 && k >= lo && k <= hi { window.append(UInt64(k) << 32 | UInt64(offset &+ i)) }
                    }
                    below += count
                }
            }
        }
        guard below < m, m <= below + window.count else { return nil }
        return PruningSelection.kthSmallest(&window, k: m - 1 - below)
    }

    /// The histogram selection: the top 16 key bits locate the bucket of the `m`-th lowest key.
    private func histogramThreshold(_ m: Int, in pool: [Int]) -> UInt64 {
        var histogram = [Int32](repeating: 0, count: 1 << 16)
        histogram.withUnsafeMutableBufferPointer { h in
            for l in pool {
                layers[l].mask.storage.withUnsafeBufferPointer { mask in
                    source.withValues(l) { v in
                        // Branch-free: a pruned weight adds 0.
                        for i in 0..<mask.count {
                            let one: Int32 = mask[i] != 0 ? 1 : 0
                            h[Int(PruningSelection.orderKey(Source.score(v[i])) >> 16)] &+= one
                        }
                    }
                }
            }
        }
        var digit = 0, below = 0
        while below + Int(histogram[digit]) < m { below += Int(histogram[digit]); digit += 1 }
        let size = Int(histogram[digit])
        var bucket = [UInt64](unsafeUninitializedCapacity: size) { keys, count in
            var n = 0
            for l in pool {
                let offset = offsets[l]
                layers[l].mask.storage.withUnsafeBufferPointer { mask in
                    source.withValues(l) { v in
                        for i in 0..<mask.count {
                            let k = PruningSelection.orderKey(Source.score(v[i]))
                            if Int(k >> 16) == digit, mask[i] != 0, n < size {
                                keys[n] = UInt64(k) << 32 | UInt64(offset + i)
                                n += 1
                            }
                        }
                    }
                }
            }
            count = n
        }
        return PruningSelection.kthSmallest(&bucket, k: m - 1 - below)
    }

    /// How many kept weights of each layer of `pool` have a key at most `threshold`.
    func count(_ threshold: UInt64, in pool: [Int]) -> [Int] {
        var counts = [Int](repeating: 0, count: layers.count)
        for l in pool {
            let offset = offsets[l]
            counts[l] = layers[l].mask.storage.withUnsafeBufferPointer { mask in
                source.withValues(l) { v in
                    var n = 0
                    for i in 0..<mask.count where mask[i] != 0
                        && PruningSelection.key(saliency: Source.score(v[i]), position: offset + i) <= threshold {
                        n += 1
                    }
                    return n
                }
            }
        }
        return counts
    }

    /// Prunes the kept weights of `pool` whose key is at most `threshold`.
    func apply(_ threshold: UInt64, in pool: [Int]) {
        for l in pool {
            let base = offsets[l]
            if Source.readsWeights {
                layers[l].pruneKept { i, w in
                    PruningSelection.key(saliency: Source.score(w), position: base &+ i) <= threshold
                }
            } else {
                _ = source.withValues(l) { v in
                    layers[l].pruneKept { i, _ in
                        PruningSelection.key(saliency: Source.score(v[i]), position: base &+ i) <= threshold
                    }
                }
            }
        }
    }

    /// Prunes the `m` lowest kept weights of `pool`.
    func pruneLowest(_ m: Int, in pool: [Int]) {
        if let t = threshold(m, in: pool) { apply(t, in: pool) }
    }
}
