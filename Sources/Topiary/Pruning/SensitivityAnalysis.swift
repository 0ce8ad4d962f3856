/// Sensitivity analysis: how much each layer, pruned alone, hurts the validation loss and accuracy,
/// and per-layer targets derived from it (the article's "more sophisticated layerwise pruning").
///
/// For each prunable layer and each sparsity, a copy of the network has only that layer pruned
/// (by ``saliency``), optionally fine-tuned for a few batches, and is evaluated on the validation
/// split (never the test split).
///
/// ```swift
/// let curves = try SensitivityAnalysis(sparsities: [0.5, 0.8, 0.9, 0.95, 0.98])
///     .run(network, validation: data.validation)
/// let budgetTargets = curves.targets(budget: 0.005)           // (a) largest sparsity per layer within 0.5 points
/// let s = try curves.scope(budget: nil, target: 0.95, layerSizes: network.layers.map(\.weight.count))   // (b) for 95% overall
/// try Pruner(saliency: .magnitude, scope: s.scope).prune(network, to: s.target)
/// ```
public struct SensitivityAnalysis {
    /// The sparsities tried for each layer.
    var sparsities: [Double]
    /// The saliency that chooses the weights pruned.
    public var saliency: Saliency
    /// Batches of fine-tuning after pruning each point (0: none).
    var fineTuneBatches: Int
    /// The learning rate of that fine-tuning (SGD, momentum 0.9).
    var fineTuneLearningRate: Float
    /// Examples per fine-tuning batch.
    public var batchSize: Int

    /// The default sparsities: 0.1, 0.2, …, 0.9, 0.95, 0.98, 0.99.
    public static let defaultSparsities: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]

    /// Creates an analysis.
    public init(sparsities: [Double] = defaultSparsities, saliency: Saliency = .magnitude,
                fineTuneBatches: Int = 0, fineTuneLearningRate: Float = 0.01, batchSize: Int = 128) {
        self.sparsities = sparsities
        self.saliency = saliency
        self.fineTuneBatches = fineTuneBatches
        self.fineTuneLearningRate = fineTuneLearningRate
        self.batchSize = batchSize
    }

    /// Runs the analysis; `network` is left unchanged.
    ///
    /// - Parameters:
    ///   - network: the network analysed; each point prunes a copy of it, one layer at a time.
    ///   - validation: the data the points are measured on.
    ///   - train: the data for the optional fine-tuning (required when `fineTuneBatches` > 0).
    ///   - progress: called after each point with (points done, points in all).
    /// - Throws: `invalidOption` for sparsities outside `[0, 1]`, empty validation data or missing
    ///   training data; the saliency's errors.
    public func run(_ network: Chain, validation: LabeledData, train: LabeledData? = nil,
                    progress: ((Int, Int) -> Void)? = nil) throws -> SensitivityCurves {
        guard !sparsities.isEmpty, sparsities.allSatisfy({ $0.isFinite && (0...1).contains($0) }) else {
            throw TopiaryError(.invalidOption, "sensitivity sparsities must be in [0, 1], got \(sparsities)")
        }
        guard !validation.isEmpty else { throw TopiaryError(.invalidOption, "sensitivity analysis needs validation data (--validation > 0)") }
        if fineTuneBatches > 0, train?.isEmpty ?? true {
            throw TopiaryError(.invalidOption, "fine-tuning during sensitivity analysis needs training data")
        }
        let base = network.copy()
        let baseline = try base.evaluate(validation)
        let layers = base.layers
        let sorted = sparsities.sorted()
        var curves: [SensitivityCurves.Curve] = []
        var done = 0
        for l in layers.indices {
            var points: [SensitivityCurves.Point] = []
            let others = Set(layers.indices).subtracting([l])
            let pruner = Pruner(saliency: saliency, scope: PruningScope(.layerwise, protectedLayers: others))
            for s in sorted {
                let copy = base.copy()
                try pruner.prune(copy, to: s)
                if fineTuneBatches > 0, let train {
                    let trainer = try Trainer(network: copy, optimizer: SGD(learningRate: fineTuneLearningRate, momentum: 0.9),
                                          batchSize: batchSize, seed: UInt64(l))
                    try trainer.trainEpoch(train.prefix(fineTuneBatches * batchSize))
                }
                let e = try copy.evaluate(validation)
                points.append(.init(sparsity: s, loss: e.loss, accuracy: e.accuracy))
                done += 1
                progress?(done, layers.count * sorted.count)
            }
            curves.append(.init(layer: l, weights: layers[l].weight.count, points: points))
        }
        return SensitivityCurves(baselineLoss: baseline.loss, baselineAccuracy: baseline.accuracy, layers: curves)
    }
}

/// The curves of a ``SensitivityAnalysis`` and the per-layer targets derived from them.
public struct SensitivityCurves: Encodable, Sendable, Equatable {
    /// One measurement: a layer pruned alone to `sparsity`.
    public struct Point: Encodable, Sendable, Equatable {
        /// The layer's sparsity.
        public var sparsity: Double
        /// The validation loss.
        public var loss: Double
        /// The validation accuracy.
        public var accuracy: Double
    }

    /// One layer's curve.
    public struct Curve: Encodable, Sendable, Equatable {
        /// The prunable-layer index.
        public var layer: Int
        /// The layer's number of weights.
        public var weights: Int
        /// The measurements, by increasing sparsity.
        public var points: [Point]
    }

    /// The unpruned network's validation loss.
    var baselineLoss: Double
    /// The unpruned network's validation accuracy.
    public var baselineAccuracy: Double
    /// One curve per prunable layer.
    public var layers: [Curve]

    enum CodingKeys: String, CodingKey {
        case layers
        case baselineLoss = "baseline_loss", baselineAccuracy = "baseline_accuracy"
    }

    /// (a) For each layer, the largest measured sparsity such that it and every smaller measured
    /// sparsity drop the validation accuracy by at most `budget` (a fraction: 0.005 is half a point).
    public func targets(budget: Double) -> [Double] {
        layers.map { curve in
            var best = 0.0
            for p in curve.points {
                guard baselineAccuracy - p.accuracy <= budget + 1e-12 else { break }
                best = p.sparsity
            }
            return best
        }
    }

    /// The predicted cost of pruning layer `l` to `x`: the accuracy drop plus a thousandth of the
    /// loss increase (to order layers whose accuracy does not move), interpolated linearly from
    /// `(0, 0)` through the measured points, made non-decreasing, and extrapolated to `x = 1`.
    func predictedCost(layer l: Int, at x: Double) -> Double {
        var xs: [Double] = [0], ys: [Double] = [0]
        var running = 0.0
        for p in layers[l].points where p.sparsity > xs.last! {
            running = max(running, max(0, baselineAccuracy - p.accuracy) + 1e-3 * max(0, p.loss - baselineLoss))
            xs.append(p.sparsity)
            ys.append(running)
        }
        if xs.last! < 1 {
            let n = xs.count
            let slope = n >= 2 ? (ys[n - 1] - ys[n - 2]) / max(1e-9, xs[n - 1] - xs[n - 2]) : 1
            xs.append(1)
            ys.append(ys[n - 1] + max(slope, 1) * (1 - xs[n - 1]))
        }
        if x <= 0 { return 0 }
        for i in 1..<xs.count where x <= xs[i] {
            let f = (x - xs[i - 1]) / max(1e-12, xs[i] - xs[i - 1])
            return ys[i - 1] + f * (ys[i] - ys[i - 1])
        }
        return ys.last!
    }

    /// (b) Per-layer sparsities that together prune exactly `overall` of all the layers' weights with
    /// the smallest predicted cost, found greedily: repeatedly raise by `increment` the sparsity of the
    /// layer whose predicted cost grows least per weight pruned (ties: the larger layer, then the lower
    /// index); the last raise is shortened to land exactly on `overall`.
    public func allocation(overall: Double, increment: Double = 0.005) -> [Double] {
        let n = layers.map { Double($0.weights) }
        let total = n.reduce(0, +)
        var x = [Double](repeating: 0, count: layers.count)
        var need = min(max(overall, 0), 1) * total
        while need > 1e-9 {
            var best: (cost: Double, l: Int, next: Double)?
            for l in layers.indices where x[l] < 1 {
                let next = min(1, x[l] + increment)
                let cost = (predictedCost(layer: l, at: next) - predictedCost(layer: l, at: x[l])) / ((next - x[l]) * n[l])
                if let b = best {
                    if cost < b.cost - 1e-15 || (abs(cost - b.cost) <= 1e-15 && n[l] > n[b.l]) { best = (cost, l, next) }
                } else {
                    best = (cost, l, next)
                }
            }
            guard let b = best else { break }
            let gain = (b.next - x[b.l]) * n[b.l]
            if gain >= need {
                x[b.l] += need / n[b.l]
                need = 0
            } else {
                x[b.l] = b.next
                need -= gain
            }
        }
        return x.map { min(1, max(0, $0)) }
    }

    /// A scope that prunes each layer to ``targets(budget:)`` (a profile, scaled along a schedule).
    func budgetScope(budget: Double) -> PruningScope {
        .perLayer(targets(budget: budget))
    }

    /// A scope that, at overall sparsity `s`, prunes each layer to ``allocation(overall:increment:)``.
    func allocationScope() -> PruningScope {
        let curves = self
        return .allocated(name: "sensitivity") { s in curves.allocation(overall: s) }
    }

    /// The scope that prunes by these curves, with the per-layer targets it aims at and the final
    /// overall target, for either of the two uses:
    /// - with a `budget` (a fraction of accuracy: 0.005 is half a point), each layer's largest
    ///   sparsity within it (``targets(budget:)``) as a ``PruningScope/perLayer(_:)`` profile, and
    ///   as final target the overall sparsity those targets imply for layers of `layerSizes`
    ///   prunable parameters (protection and caps applied), so that every layer lands on its own
    ///   target; `target` is then ignored;
    /// - without, the allocation scope (`allocationScope()`) and its per-layer sparsities at
    ///   `target`, which stays the final target.
    ///
    /// ```swift
    /// let curves = try SensitivityAnalysis().run(network, validation: data.validation)
    /// let s = try curves.scope(budget: 0.005, target: 0.9, layerSizes: network.layers.map(\.weight.count))
    /// try Pruner(saliency: .magnitude, scope: s.scope).prune(network, to: s.target)
    /// ```
    ///
    /// - Throws: `invalidOption` when the curves do not have one layer per entry of `layerSizes`.
    public func scope(budget: Double?, target: Double, layerSizes: [Int], protectedLayers: Set<Int> = [],
                      sparsityCaps: [Int: Double] = [:]) throws -> SensitivityScope {
        guard layers.count == layerSizes.count else {
            throw TopiaryError(.invalidOption, "the sensitivity curves cover \(layers.count) layers, the network has \(layerSizes.count) prunable layers")
        }
        guard let budget else {
            var scope = allocationScope()
            scope.protectedLayers = protectedLayers
            scope.sparsityCaps = sparsityCaps
            return SensitivityScope(scope: scope, layerTargets: allocation(overall: target), target: target)
        }
        let targets = self.targets(budget: budget)
        let scope = PruningScope(.perLayer(targets), protectedLayers: protectedLayers, sparsityCaps: sparsityCaps)
        return SensitivityScope(scope: scope, layerTargets: targets, target: scope.impliedSparsity(layerSizes: layerSizes) ?? 0)
    }

    /// The curves as CSV: `layer,weights,sparsity,val_loss,val_accuracy,accuracy_drop`.
    @_spi(Files) public var csv: String {
        var lines = ["layer,weights,sparsity,val_loss,val_accuracy,accuracy_drop"]
        for c in layers {
            for p in c.points {
                lines.append("\(c.layer),\(c.weights),\(p.sparsity),\(p.loss),\(p.accuracy),\(baselineAccuracy - p.accuracy)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A pruning scope derived from ``SensitivityCurves`` (``SensitivityCurves/scope(budget:target:layerSizes:protectedLayers:sparsityCaps:)``).
public struct SensitivityScope {
    /// The scope to prune with.
    public var scope: PruningScope
    /// The sparsity each prunable layer is aimed at (at the final target).
    public var layerTargets: [Double]
    /// The final overall target: the requested one, or with a budget the sparsity the per-layer targets imply.
    public var target: Double
}
