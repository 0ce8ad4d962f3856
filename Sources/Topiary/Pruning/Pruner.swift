/// One pruning step: a ``Saliency`` and a ``PruningScope`` turned into masks, with exact counts.
///
/// Pruning to sparsity `s` leaves exactly `n − round(s·n)` non-zero weights out of `n`: per layer
/// for layerwise and per-layer scopes, over all prunable layers together for the global scope
/// (see ``PruningScope`` for protection and caps). Among the weights still kept, the lowest
/// saliencies are pruned; ties go to the lower prunable-layer index, then the lower flat index
/// (row-major in `[out, in]`), being pruned first (`PruningSelection`). Masks only shrink: a
/// pruned weight stays pruned, so a target below the current sparsity prunes nothing.
///
/// Biases are not pruned by default. With ``includeBiases`` they take part like weights: a
/// layer's `n_l` counts its weights and its biases, each bias is scored by the saliency (`|b|`
/// for magnitude), its ``Dense/biasMask`` only shrinks, and pruning the `n` prunable
/// parameters to `s` leaves exactly `n − round(s·n)` of them non-zero. In the tie-break a layer's
/// biases come after its weights (bias `j` of a layer of `k` weights has flat index `k + j`).
///
/// ```swift
/// let network = try Model.load(from: "dense.safetensors").network
/// let pruner = Pruner(saliency: .magnitude, scope: .global)
/// let step = try pruner.prune(network, to: 0.9)
/// network.sparsity          // 0.9 (exactly 239,580 of 266,200 weights are zero)
/// let withBiases = Pruner(saliency: .magnitude, scope: .global, includeBiases: true)
/// ```
public struct Pruner {
    /// How important each weight is.
    public var saliency: Saliency
    /// Where the target applies.
    public var scope: PruningScope
    /// Whether biases take part in the ranking and selection like weights (default `false`).
    public var includeBiases: Bool

    /// Creates a pruner.
    public init(saliency: Saliency = .magnitude, scope: PruningScope = .global, includeBiases: Bool = false) {
        self.saliency = saliency
        self.scope = scope
        self.includeBiases = includeBiases
    }

    /// Prunes `network` in place to overall sparsity `sparsity`.
    ///
    /// - Throws: `invalidOption` when `sparsity` is outside `[0, 1]`, the scope does not fit the
    ///   network, protection and caps make the target unreachable, or biases are included with a
    ///   saliency that does not score them; the saliency's errors.
    /// - Complexity: O(n) in the number of prunable parameters, plus the saliency's cost. The
    ///   magnitude saliency is read straight from the parameters, without materialising scores.
    @discardableResult
    public func prune(_ network: Chain, to sparsity: Double) throws -> WeightPruningResult {
        let clock = ContinuousClock()
        let start = clock.now
        guard sparsity.isFinite, (0...1).contains(sparsity) else {
            throw TopiaryError(.invalidOption, "target sparsity must be in [0, 1], got \(sparsity)")
        }
        if includeBiases, !saliency.scoresBiases {
            throw TopiaryError(.invalidOption, "saliency \(saliency.name) does not score biases; make it with Saliency(name:weights:biases:) to prune biases")
        }
        let layers = network.layers
        try scope.validate(layerCount: layers.count)
        for layer in layers { layer.materializeMasks(biases: includeBiases) }
        // Slots: each layer's weights, then (with biases) its biases; slot order is the tie-break order.
        let slots = layers.flatMap { layer in includeBiases ? [Slot(layer, bias: false), Slot(layer, bias: true)] : [Slot(layer, bias: false)] }
        let perLayer = includeBiases ? 2 : 1
        let sizes = layers.map { $0.weight.count + (includeBiases ? $0.bias.count : 0) }
        guard sizes.reduce(0, +) < Int(UInt32.max) else {
            throw TopiaryError(.invalidShape, "more than 2³² prunable parameters are not supported")
        }
        let pruned = { (layer: Dense) in
            layer.weight.count - layer.keptCount + (self.includeBiases ? layer.bias.count - layer.keptBiasCount : 0)
        }
        let before = layers.map(pruned)
        let plan = Plan(slots: slots, perLayer: perLayer)
        if let secondOrder = saliency.secondOrder {
            try secondOrder.prune(network, to: sparsity, scope: scope, before: before)
        } else if saliency.isMagnitude {
            try prune(plan, to: sparsity, sizes: sizes, before: before, source: MagnitudeScores(slots: slots))
        } else {
            let scores = try saliency.scores(for: network, includingBiases: includeBiases)
            let perSlot = includeBiases ? zip(scores.weights, scores.biases ?? []).flatMap { [$0, $1] } : scores.weights
            try prune(plan, to: sparsity, sizes: sizes, before: before, source: ComputedScores(scores: perSlot))
        }
        let after = layers.map(pruned)
        return WeightPruningResult(target: sparsity, layerWeights: sizes, layerPruned: after,
                    newlyPruned: zip(after, before).map { $0 - $1 }, includesBiases: includeBiases,
                    seconds: (clock.now - start).seconds)
    }

    /// The slots of the network and which belong to each prunable layer.
    private struct Plan {
        let slots: [Slot]
        let perLayer: Int
        /// The slot indices of prunable layers `layers`.
        func slots<S: Sequence>(of layers: S) -> [Int] where S.Element == Int {
            layers.flatMap { l in (0..<perLayer).map { l * perLayer + $0 } }
        }
        /// Parameters still kept in prunable layer `l`.
        func kept(_ l: Int) -> Int { slots(of: [l]).reduce(0) { $0 + slots[$1].kept } }
    }

    private func prune<S: ScoreSource>(_ plan: Plan, to sparsity: Double, sizes: [Int], before: [Int],
                                       source: S) throws {
        let selection = Selection(slots: plan.slots, source: source)
        let layerCount = sizes.count
        if let targets = try scope.layerTargets(at: sparsity, layerSizes: sizes) {
            for l in 0..<layerCount {
                guard let t = targets[l] else { continue }
                let m = Int((t * Double(sizes[l])).rounded()) - before[l]
                if m > 0 { selection.pruneLowest(m, in: plan.slots(of: [l])) }
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
            let pool = (0..<layerCount).filter { !held.contains($0) }
            let m = goal - held.reduce(0) { $0 + capCount[$1] } - pool.reduce(0) { $0 + before[$1] }
            let poolKept = pool.reduce(0) { $0 + plan.kept($1) }
            if m > poolKept {
                throw TopiaryError(.invalidOption, "sparsity \(sparsity) cannot be reached: protected and capped layers leave only \(poolKept) parameters to prune, \(m) needed")
            }
            let poolSlots = plan.slots(of: pool)
            let threshold = selection.threshold(m, in: poolSlots)
            var over: [Int] = []
            if let threshold, pool.contains(where: { capCount[$0] < sizes[$0] }) {
                let counts = selection.count(threshold, in: poolSlots)
                over = pool.filter { l in before[l] + plan.slots(of: [l]).reduce(0) { $0 + counts[$1] } > capCount[l] }
            }
            if over.isEmpty {
                if let threshold { selection.apply(threshold, in: poolSlots) }
                for l in held where !scope.protectedLayers.contains(l) && capCount[l] > before[l] {
                    selection.pruneLowest(capCount[l] - before[l], in: plan.slots(of: [l]))
                }
                return
            }
            held.formUnion(over)
        }
    }
}

/// What one call of ``Pruner/prune(_:to:)`` did.
///
/// The counts are of prunable parameters: each layer's weights, plus its biases when the pruner
/// prunes biases too (``Pruner/includeBiases``).
public struct WeightPruningResult: Sendable, Equatable {
    /// The requested overall sparsity.
    public var target: Double
    /// Prunable parameters per prunable layer (weights, plus biases when ``Pruner/includeBiases``).
    var layerWeights: [Int]
    /// Parameters pruned per prunable layer after the step (masked out).
    public var layerPruned: [Int]
    /// Parameters newly pruned by this step, per prunable layer.
    public var newlyPruned: [Int]
    /// Whether biases were counted and pruned with the weights.
    var includesBiases: Bool
    /// Seconds spent (saliency and selection).
    public var seconds: Double

    /// The fraction of prunable parameters masked out after the step.
    public var sparsity: Double {
        let n = layerWeights.reduce(0, +)
        return n == 0 ? 0 : Double(layerPruned.reduce(0, +)) / Double(n)
    }
    /// The per-layer sparsities after the step.
    public var layerSparsity: [Double] {
        zip(layerPruned, layerWeights).map { $1 == 0 ? 0 : Double($0) / Double($1) }
    }
}

/// One group of prunable parameters: the weights or the biases of a prunable layer.
private struct Slot {
    let layer: Dense
    let isBias: Bool

    init(_ layer: Dense, bias: Bool) {
        self.layer = layer
        self.isBias = bias
    }

    /// The number of parameters.
    var count: Int { isBias ? layer.bias.count : layer.weight.count }
    /// The number still kept by the mask.
    var kept: Int { isBias ? layer.keptBiasCount : layer.keptCount }

    /// Calls `body` with the mask (entries 0 or 1); the pruner gives every slot a mask first.
    func withMask<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        let mask = isBias ? layer.biasMask : layer.mask?.storage
        return (mask ?? [Float](repeating: 1, count: count)).withUnsafeBufferPointer(body)
    }

    /// Calls `body` with the parameters.
    func withValues<R>(_ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        isBias ? layer.bias.withUnsafeBufferPointer(body) : layer.weight.storage.withUnsafeBufferPointer(body)
    }

    /// Prunes every kept parameter whose index and value satisfy `shouldPrune`.
    func pruneKept(where shouldPrune: (Int, Float) -> Bool) {
        if isBias { layer.pruneKeptBiases(where: shouldPrune) } else { layer.pruneKept(where: shouldPrune) }
    }
}

/// Where a selection reads the saliency of parameter `i` of slot `s`.
private protocol ScoreSource {
    /// Calls `body` with slot `s`'s raw values and returns its result.
    func withValues<R>(_ s: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R
    /// The saliency of a raw value.
    static func score(_ value: Float) -> Float
    /// Whether the raw values are the parameters themselves (then pruning reads them as it writes).
    static var readsWeights: Bool { get }
}

/// Magnitude: the parameters themselves, `|w|` and `|b|`; no score array is built.
private struct MagnitudeScores: ScoreSource {
    let slots: [Slot]
    func withValues<R>(_ s: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        slots[s].withValues(body)
    }
    static func score(_ value: Float) -> Float { abs(value) }
    static var readsWeights: Bool { true }
}

/// Scores computed by a ``Saliency``.
private struct ComputedScores: ScoreSource {
    let scores: [[Float]]
    func withValues<R>(_ s: Int, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        scores[s].withUnsafeBufferPointer(body)
    }
    static func score(_ value: Float) -> Float { value }
    static var readsWeights: Bool { false }
}

/// Exact-k selection over the kept parameters of some slots (see ``PruningSelection``); a
/// parameter's position is its index over the concatenation of all slots.
private struct Selection<Source: ScoreSource> {
    let slots: [Slot]
    let offsets: [Int]
    let source: Source

    init(slots: [Slot], source: Source) {
        self.slots = slots
        self.source = source
        var offsets = [Int](repeating: 0, count: slots.count)
        for s in 1..<max(1, slots.count) { offsets[s] = offsets[s - 1] + slots[s - 1].count }
        self.offsets = offsets
    }

    /// The largest order key among the `m` lowest kept parameters of the slots `pool`, or `nil` when `m == 0`.
    ///
    /// Floyd–Rivest style: the saliency keys of a strided sample give a narrow window that should
    /// hold the `m`-th lowest; one pass counts the keys below the window and gathers those inside,
    /// which are then radix-selected. If the window misses (it cannot for most data, but may for
    /// adversarial ties), a histogram of the top 16 key bits finds the bucket instead. Either way
    /// the answer is exact, and no key array of the whole network is built.
    func threshold(_ m: Int, in pool: [Int]) -> UInt64? {
        guard m > 0 else { return nil }
        let total = pool.reduce(0) { $0 + slots[$1].kept }
        require(m <= total, "Pruner: asked to prune \(m) of \(total) candidates")
        if total >= 1 << 14, let t = windowThreshold(m, in: pool, kept: total) { return t }
        return histogramThreshold(m, in: pool)
    }

    /// The sampled-window selection, or `nil` when the window misses.
    private func windowThreshold(_ m: Int, in pool: [Int], kept total: Int) -> UInt64? {
        let all = pool.reduce(0) { $0 + slots[$1].count }
        let sampleCount = 4096
        let step = max(1, all / sampleCount)
        var sample: [UInt32] = []
        sample.reserveCapacity(sampleCount + pool.count)
        var position = 0   // over the concatenation of the pool's layers
        for l in pool {
            let n = slots[l].count
            slots[l].withMask { mask in
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
            slots[l].withMask { mask in
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
                slots[l].withMask { mask in
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
                slots[l].withMask { mask in
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

    /// How many kept parameters of each slot of `pool` have a key at most `threshold`.
    func count(_ threshold: UInt64, in pool: [Int]) -> [Int] {
        var counts = [Int](repeating: 0, count: slots.count)
        for l in pool {
            let offset = offsets[l]
            counts[l] = slots[l].withMask { mask in
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

    /// Prunes the kept parameters of `pool` whose key is at most `threshold`.
    func apply(_ threshold: UInt64, in pool: [Int]) {
        for l in pool {
            let base = offsets[l]
            if Source.readsWeights {
                slots[l].pruneKept { i, w in
                    PruningSelection.key(saliency: Source.score(w), position: base &+ i) <= threshold
                }
            } else {
                source.withValues(l) { v in
                    slots[l].pruneKept { i, _ in
                        PruningSelection.key(saliency: Source.score(v[i]), position: base &+ i) <= threshold
                    }
                }
            }
        }
    }

    /// Prunes the `m` lowest kept parameters of `pool`.
    func pruneLowest(_ m: Int, in pool: [Int]) {
        if let t = threshold(m, in: pool) { apply(t, in: pool) }
    }
}
