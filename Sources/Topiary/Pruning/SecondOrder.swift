/// Second-order, data-aware pruning: Optimal Brain Surgeon (Hassibi & Stork 1993) made
/// practical layer by layer as in Optimal Brain Compression and SparseGPT (Frantar & Alistarh
/// 2022, 2023). Not API: users reach it through ``Saliency/obs(data:calibrationSamples:damping:)``.
///
/// For a layer `y = W·x` (`W` `[out, in]`) and calibration inputs `X` `[n, in]`, the layer-wise
/// reconstruction error `‖W·Xᵀ − Ŵ·Xᵀ‖²` has the Hessian `H = 2·XᵀX/n` (the same for every row),
/// dampened to `H + λ·mean(diag H)·I`. Removing weight `q` of a row costs `w_q² / [H⁻¹]_qq` and
/// the rest of the row is best updated by `δw = −(w_q / [H⁻¹]_qq) · H⁻¹[:, q]`.
///
/// The layer is processed with SparseGPT's column-block algorithm: with `U` the upper Cholesky
/// factor of `H⁻¹` (`H⁻¹ = Uᵀ·U`), columns are visited in order, each pruned weight's error
/// `w_q / U_qq` is propagated to the columns still to come (`−err · U[q, q+1…]`, a rank-1 update
/// within a block of 128 columns, one `sgemm` for the columns after the block). Visiting columns in
/// a fixed order is what lets one factor serve every row and replaces OBS's update of the inverse
/// after each removal (row `q` of `U` *is* the inverse with columns `< q` eliminated); for a weight of
/// the first column it is exactly the closed-form OBS update, for a later column it is OBS over the
/// columns not yet visited (the earlier ones are frozen).
///
/// Selection (exact counts): the layer's budget `k` is split over groups of 8 columns as the
/// layer's `k` kept weights with the lowest `w² / U_qq²` before any update fall (so a group of
/// cheap weights gives up more, unlike SparseGPT's uniform share per block); each group's share
/// is then taken, when the elimination reaches the group, from its kept weights with the lowest
/// `w² / U_qq²` *as updated so far*, ties to the lower flat index. The layer ends with exactly `k`
/// more pruned. Groups of 8 were the best of 1, 2, 4, 8, 16, 32, 128 and 1,024 columns on the
/// README's LeNet-300-100 (one-shot, no fine-tuning, 90/95/98%): small groups choose from
/// up-to-date weights, a group of one leaves each column's count fixed by the initial scores.
/// Already-pruned weights stay pruned and exactly zero: they are treated as removed weights, so
/// what earlier columns pushed onto them is passed on to the columns after them.
struct SecondOrder {
    /// The calibration samples (training data, never validation or test).
    var data: LabeledData
    /// Dampening `λ`, a fraction of the mean diagonal of `H`.
    var damping: Double
    /// Columns per block of the lazy update.
    var blockSize: Int = 128
    /// Columns whose pruned weights are chosen together, from the weights as updated so far.
    var selectionGroup: Int = 8
    /// Per-layer budgets from the OBS errors `w_q² / [H⁻¹]_qq` of all layers ranked together
    /// (on the network's inputs before the step), instead of from magnitude.
    var globalBudget = false

    /// The checks common to every use.
    func validate(against network: Chain) throws {
        guard damping.isFinite, damping >= 0 else {
            throw TopiaryError(.invalidOption, "OBS: dampening must be a finite fraction at least 0, got \(damping)")
        }
        guard !data.isEmpty else { throw TopiaryError(.invalidOption, "OBS needs calibration data, got none") }
        guard blockSize >= 1 else { throw TopiaryError(.invalidOption, "OBS: block size must be at least 1, got \(blockSize)") }
        try data.check(against: network, source: "OBS calibration data")
    }

    /// `H = 2·XᵀX/n + λ·mean(diag)·I` of inputs `x` `[n, in]` (`ssyrk`).
    ///
    /// - Throws: ``TopiaryError/Kind/invalidOption`` for no samples or a negative or non-finite `λ`.
    static func hessian(_ x: Matrix, damping: Double) throws -> Matrix {
        guard x.rows > 0 else { throw TopiaryError(.invalidOption, "OBS: the layer statistics need at least one sample") }
        guard damping.isFinite, damping >= 0 else {
            throw TopiaryError(.invalidOption, "OBS: dampening must be a finite fraction at least 0, got \(damping)")
        }
        var h = BLAS.gram(x, alpha: 2 / Float(x.rows))
        let d = h.columns
        var mean = 0.0
        for i in 0..<d { mean += Double(h.storage[i * d + i]) }
        mean /= Double(max(1, d))
        let add = Float(damping * mean)
        for i in 0..<d { h.storage[i * d + i] += add }
        return h
    }

    /// Prunes `network` to `sparsity`: per-layer budgets from what magnitude pruning with `scope`
    /// would remove in each layer (or, with ``globalBudget``, pruning by the OBS errors), then each layer in order is pruned and reconstructed on the
    /// inputs that the already-pruned layers before it give (SparseGPT's sequential mode).
    func prune(_ network: Chain, to sparsity: Double, scope: PruningScope, before: [Int]) throws {
        try validate(against: network)
        let probe = network.copy()
        let scores = globalBudget ? try self.scores(for: network) : []
        let ranking = globalBudget ? Saliency(name: "obs-error") { _ in scores } : .magnitude
        let budget = try Pruner(saliency: ranking, scope: scope).prune(probe, to: sparsity)
        let counts = zip(budget.layerPruned, before).map { max(0, $0 - $1) }
        let layers = network.layers
        var x = data.images
        for (l, layer) in layers.enumerated() {
            if counts[l] > 0 {
                let h = try Self.hessian(x, damping: damping)
                try Self.prune(layer, count: counts[l], hessian: h, blockSize: blockSize,
                               selectionGroup: selectionGroup)
            }
            if counts[(l + 1)...].contains(where: { $0 > 0 }) { x = try layer.predict(x) }
        }
    }

    /// OBS scores without reconstruction, `w_q² / [H⁻¹]_qq`, on the inputs the network gives as it is.
    func scores(for network: Chain) throws -> [[Float]] {
        try validate(against: network)
        var x = data.images
        var result: [[Float]] = []
        for layer in network.layers {
            let inverse = try BLAS.inverseSPD(try Self.hessian(x, damping: damping))
            let (rows, cols) = (layer.outputSize, layer.inputSize)
            var s = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                for c in 0..<cols {
                    let w = layer.weight.storage[r * cols + c]
                    s[r * cols + c] = w * w / inverse.storage[c * cols + c]
                }
            }
            result.append(s)
            x = try layer.predict(x)
        }
        return result
    }

    /// Prunes `count` more of `layer`'s kept weights with SparseGPT's column-block reconstruction
    /// for the dampened Hessian `h` of its inputs; biases are untouched.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidOption`` when `h` is singular or not positive definite
    ///   (LAPACK's `info`), does not fit the layer, or `count` exceeds the kept weights.
    static func prune(_ layer: Dense, count: Int, hessian h: Matrix, blockSize: Int = 128,
                      selectionGroup: Int = 8) throws {
        let (rows, cols) = (layer.outputSize, layer.inputSize)
        guard h.rows == cols, h.columns == cols else {
            throw TopiaryError(.invalidShape, "OBS: \(layer.shapeName) has \(cols) inputs, the Hessian is \(h.rows)×\(h.columns)")
        }
        let oldMask = layer.mask?.storage ?? [Float](repeating: 1, count: rows * cols)
        let keptTotal = oldMask.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        guard count >= 0, count <= keptTotal else {
            throw TopiaryError(.invalidOption, "OBS: cannot prune \(count) weights of \(layer.shapeName), \(keptTotal) are kept")
        }
        guard count > 0 else { return }
        let u = try BLAS.cholesky(try BLAS.inverseSPD(h), upper: true)
        var removed = oldMask.map { $0 == 0 }   // old and new pruned positions
        var newlyPruned = [Bool](repeating: false, count: rows * cols)
        var w = layer.weight
        let group = max(1, selectionGroup)
        let bs = max(group, max(1, blockSize) / group * group)   // a multiple of the group
        let groupBudget = Self.blockBudgets(weight: layer.weight, removed: removed, u: u, count: count, blockSize: group)
        for b1 in stride(from: 0, to: cols, by: bs) {
            let b2 = min(b1 + bs, cols), width = b2 - b1
            var w1 = [Float](repeating: 0, count: rows * width)
            var err = [Float](repeating: 0, count: rows * width)
            for r in 0..<rows { for c in 0..<width { w1[r * width + c] = w.storage[r * cols + b1 + c] } }
            /// Selection for the group of columns starting at block column `c0`: its budget, the
            /// lowest w² / U_qq² among its kept weights as updated so far.
            func select(from c0: Int) {
                let take = groupBudget[(b1 + c0) / group]
                guard take > 0 else { return }
                var candidates: [(score: Float, index: Int)] = []
                for r in 0..<rows {
                    for c in c0..<min(c0 + group, width) where !removed[r * cols + b1 + c] {
                        candidates.append((Self.score(w1[r * width + c], u.storage[(b1 + c) * cols + b1 + c]), r * cols + b1 + c))
                    }
                }
                candidates.sort { $0.score != $1.score ? $0.score < $1.score : $0.index < $1.index }
                for (_, i) in candidates.prefix(take) {
                    removed[i] = true
                    newlyPruned[i] = true
                }
            }
            for c0 in stride(from: 0, to: width, by: group) {
                select(from: c0)
                try Self.eliminate(columns: c0..<min(c0 + group, width), block: b1, width: width, rows: rows, cols: cols,
                                   removed: removed, u: u, w1: &w1, err: &err, layer: layer)
            }
            for r in 0..<rows { for c in 0..<width { w.storage[r * cols + b1 + c] = w1[r * width + c] } }
            // Lazy update of the columns after the block: W[:, b2...] −= Err · U[b1..<b2, b2...].
            if b2 < cols {
                err.withUnsafeBufferPointer { pe in
                    u.storage.withUnsafeBufferPointer { pu in
                        w.storage.withUnsafeMutableBufferPointer { pw in
                            guard let pe = pe.baseAddress, let pu = pu.baseAddress, let pw = pw.baseAddress else { return }
                            BLAS.gemm(.none, .none, m: rows, n: cols - b2, k: width, alpha: -1,
                                      a: pe, lda: width, b: pu + b1 * cols + b2, ldb: cols, beta: 1,
                                      c: pw + b2, ldc: cols)
                        }
                    }
                }
            }
        }
        guard w.storage.allSatisfy(\.isFinite) else {
            throw TopiaryError(.nonFinite, "OBS: \(layer.shapeName): the reconstructed weights are not finite; add dampening")
        }
        for i in 0..<w.count where removed[i] { w.storage[i] = 0 }
        layer.weight = w
        layer.pruneKept { i, _ in newlyPruned[i] }
        layer.applyMask()
    }

    /// The OBS score of a weight `v` whose column has factor diagonal `d`: `v² / d²`, NaN lowest.
    private static func score(_ v: Float, _ d: Float) -> Float {
        let s = v * v / (d * d)
        return s.isNaN ? -.infinity : s
    }

    /// How many weights each column block prunes: the blocks' shares of the `count` kept weights
    /// with the lowest scores `w² / U_qq²` over the whole layer before any update (ties to the
    /// lower flat index), so that the layer ends with exactly `count` more pruned and the blocks
    /// with the cheapest weights give up the most.
    private static func blockBudgets(weight: Matrix, removed: [Bool], u: Matrix, count: Int, blockSize: Int) -> [Int] {
        let (rows, cols) = (weight.rows, weight.columns)
        var keys: [UInt64] = []
        keys.reserveCapacity(rows * cols)
        for r in 0..<rows {
            for c in 0..<cols where !removed[r * cols + c] {
                let i = r * cols + c
                keys.append(PruningSelection.key(saliency: score(weight.storage[i], u.storage[c * cols + c]), position: i))
            }
        }
        var budgets = [Int](repeating: 0, count: (cols + blockSize - 1) / blockSize)
        guard count > 0, !keys.isEmpty else { return budgets }
        let threshold = PruningSelection.kthSmallest(&keys, k: min(count, keys.count) - 1)
        for r in 0..<rows {
            for c in 0..<cols where !removed[r * cols + c] {
                let i = r * cols + c
                if PruningSelection.key(saliency: score(weight.storage[i], u.storage[c * cols + c]), position: i) <= threshold {
                    budgets[c / blockSize] += 1
                }
            }
        }
        return budgets
    }

    /// Visits block columns `columns` in order: zeroes the removed weights and pushes their error
    /// `w_q / U_qq` onto the block's columns after them (a rank-1 `sger` update each), recording
    /// the errors in `err` for the lazy update of the columns after the block.
    private static func eliminate(columns: Range<Int>, block b1: Int, width: Int, rows: Int, cols: Int, removed: [Bool],
                                  u: Matrix, w1: inout [Float], err: inout [Float], layer: Dense) throws {
        try u.storage.withUnsafeBufferPointer { pu in
            try w1.withUnsafeMutableBufferPointer { pw in
                try err.withUnsafeMutableBufferPointer { pe in
                    guard let pu = pu.baseAddress, let pw = pw.baseAddress, let pe = pe.baseAddress else { return }
                    for c in columns {
                        let q = b1 + c
                        let d = pu[q * cols + q]
                        guard d.isFinite, d > 0 else {
                            throw TopiaryError(.nonFinite, "OBS: \(layer.shapeName): the inverse Hessian's factor has a non-positive diagonal at input \(q); add dampening")
                        }
                        var any = false
                        for r in 0..<rows where removed[r * cols + q] {
                            pe[r * width + c] = pw[r * width + c] / d
                            pw[r * width + c] = 0
                            any = true
                        }
                        if any, c + 1 < width {
                            BLAS.ger(rows: rows, columns: width - c - 1, alpha: -1, x: pe + c, incX: width,
                                     y: pu + q * cols + q + 1, a: pw + c + 1, lda: width)
                        }
                    }
                }
            }
        }
    }
}
