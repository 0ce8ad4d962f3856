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
    /// - Complexity: O(n) in the number of prunable weights, plus the saliency's cost.
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
        let scores = try saliency.scores(for: network)
        let before = layers.map { $0.weight.count - $0.keptCount }
        let pruneCounts: [Int]   // weights to prune now, per layer
        if let targets = try scope.layerTargets(at: sparsity, layerSizes: sizes) {
            pruneCounts = zip(zip(targets, sizes), before).map { ts, already in
                guard let t = ts.0 else { return 0 }
                return max(0, Int((t * Double(ts.1)).rounded()) - already)
            }
            for l in layers.indices where pruneCounts[l] > 0 {
                Self.pruneLowest(pruneCounts[l], in: [l], layers: layers, scores: scores, sizes: sizes)
            }
        } else {
            pruneCounts = try globalCounts(sparsity, layers: layers, scores: scores, sizes: sizes, before: before)
        }
        let after = layers.map { $0.weight.count - $0.keptCount }
        return Step(target: sparsity, layerWeights: sizes, layerPruned: after,
                    newlyPruned: zip(after, before).map { $0 - $1 },
                    seconds: (clock.now - start).seconds)
    }

    /// Global pruning with protected and capped layers: select over the pool of free layers; any
    /// layer that would exceed its cap is held at the cap and taken out of the pool, then repeat.
    private func globalCounts(_ s: Double, layers: [PrunableDense], scores: [[Float]], sizes: [Int],
                              before: [Int]) throws -> [Int] {
        let total = sizes.reduce(0, +)
        let goal = Int((s * Double(total)).rounded())
        let capCount = sizes.indices.map { l -> Int in
            if scope.protectedLayers.contains(l) { return before[l] }
            guard let cap = scope.sparsityCaps[l] else { return sizes[l] }
            return max(before[l], Int((cap * Double(sizes[l])).rounded()))
        }
        var held = Set(scope.protectedLayers)
        while true {
            let pool = layers.indices.filter { !held.contains($0) }
            let fixedPruned = held.reduce(0) { $0 + capCount[$1] }
            let poolPruned = pool.reduce(0) { $0 + before[$1] }
            let m = goal - fixedPruned - poolPruned
            let poolKept = pool.reduce(0) { $0 + layers[$1].keptCount }
            if m > poolKept {
                throw TopiaryError(.invalidOption, "sparsity \(s) cannot be reached: protected and capped layers leave only \(poolKept) weights to prune, \(m) needed")
            }
            let counts = m > 0 ? Self.countLowest(m, in: pool, layers: layers, scores: scores, sizes: sizes)
                               : [Int](repeating: 0, count: layers.count)
            let over = pool.filter { before[$0] + counts[$0] > capCount[$0] }
            if over.isEmpty {
                if m > 0 { Self.pruneLowest(m, in: pool, layers: layers, scores: scores, sizes: sizes) }
                var result = counts
                for l in held where !scope.protectedLayers.contains(l) {
                    let n = capCount[l] - before[l]
                    if n > 0 { Self.pruneLowest(n, in: [l], layers: layers, scores: scores, sizes: sizes) }
                    result[l] = n
                }
                return result
            }
            held.formUnion(over)
        }
    }

    /// The order keys of the kept weights of `pool`.
    private static func candidateKeys(in pool: [Int], layers: [PrunableDense], scores: [[Float]],
                                      sizes: [Int]) -> [UInt64] {
        var offsets = [Int](repeating: 0, count: sizes.count)
        for l in 1..<max(1, sizes.count) { offsets[l] = offsets[l - 1] + sizes[l - 1] }
        var keys = [UInt64]()
        keys.reserveCapacity(pool.reduce(0) { $0 + layers[$1].keptCount })
        for l in pool {
            let offset = offsets[l]
            layers[l].mask.storage.withUnsafeBufferPointer { mask in
                scores[l].withUnsafeBufferPointer { s in
                    for i in 0..<mask.count where mask[i] != 0 {
                        keys.append(PruningSelection.key(saliency: s[i], position: offset + i))
                    }
                }
            }
        }
        return keys
    }

    /// The largest key among the `m` lowest of `pool`, or `nil` when `m == 0`.
    private static func threshold(_ m: Int, in pool: [Int], layers: [PrunableDense], scores: [[Float]],
                                  sizes: [Int]) -> UInt64? {
        guard m > 0 else { return nil }
        var keys = candidateKeys(in: pool, layers: layers, scores: scores, sizes: sizes)
        precondition(m <= keys.count, "Pruner: asked to prune \(m) of \(keys.count) candidates")
        return PruningSelection.kthSmallest(&keys, k: m - 1)
    }

    /// Visits the kept weights of `pool` whose key is at most `threshold`.
    private static func forEachSelected(_ threshold: UInt64, in pool: [Int], layers: [PrunableDense],
                                        scores: [[Float]], sizes: [Int], _ body: (Int, Int) -> Void) {
        var offsets = [Int](repeating: 0, count: sizes.count)
        for l in 1..<max(1, sizes.count) { offsets[l] = offsets[l - 1] + sizes[l - 1] }
        for l in pool {
            let offset = offsets[l]
            layers[l].mask.storage.withUnsafeBufferPointer { mask in
                scores[l].withUnsafeBufferPointer { s in
                    for i in 0..<mask.count where mask[i] != 0
                        && PruningSelection.key(saliency: s[i], position: offset + i) <= threshold {
                        body(l, i)
                    }
                }
            }
        }
    }

    /// How many of the `m` lowest kept weights of `pool` fall in each layer.
    private static func countLowest(_ m: Int, in pool: [Int], layers: [PrunableDense], scores: [[Float]],
                                    sizes: [Int]) -> [Int] {
        var counts = [Int](repeating: 0, count: layers.count)
        guard let t = threshold(m, in: pool, layers: layers, scores: scores, sizes: sizes) else { return counts }
        forEachSelected(t, in: pool, layers: layers, scores: scores, sizes: sizes) { l, _ in counts[l] += 1 }
        return counts
    }

    /// Prunes the `m` lowest kept weights of `pool`.
    private static func pruneLowest(_ m: Int, in pool: [Int], layers: [PrunableDense], scores: [[Float]],
                                    sizes: [Int]) {
        guard let t = threshold(m, in: pool, layers: layers, scores: scores, sizes: sizes) else { return }
        var masks = layers.map(\.mask)
        var touched = Set<Int>()
        masks.withUnsafeMutableBufferPointer { masks in
            forEachSelected(t, in: pool, layers: layers, scores: scores, sizes: sizes) { l, i in
                masks[l].storage[i] = 0
                touched.insert(l)
            }
        }
        for l in touched.sorted() { layers[l].setMask(masks[l]) }
    }
}
