/// A dense layer times a binary mask: the article's `PrunableDense`.
///
/// The invariant `weight == weight ⊙ mask` always holds: pruned weights are stored as exact
/// zeros, so the forward pass is still one `sgemm`; the weight gradient is masked, and optimizers
/// mask the gradient, their update and their state in one fused pass, so a pruned weight stays
/// exactly `0.0` through any number of steps, weight decay included.
///
/// Biases have their own mask, ``biasMask``, all ones unless biases are pruned (biases are not
/// pruned by default; see ``Pruner/includeBiases``). It obeys the same rules: `bias == bias ⊙
/// biasMask`, it only shrinks, and optimizers keep a pruned bias exactly `+0.0`.
///
/// ```swift
/// var rng = SeededRandom(seed: 0)
/// let layer = PrunableDense(784, 300, activation: .relu, using: &rng)
/// layer.prune { i in abs(layer.weight.storage[i]) < 0.01 }
/// layer.pruneBiases { j in abs(layer.bias[j]) < 0.001 }
/// ```
public final class PrunableDense: Dense {
    /// The mask, `[out, in]`, with entries exactly `0` (pruned) or `1` (kept).
    public private(set) var mask: Matrix {
        didSet { keptCount = Self.nonzeroCount(mask.storage) }
    }

    /// The number of weights kept by the mask.
    public private(set) var keptCount: Int

    /// Whether any weight is pruned; when none is, masking is skipped in the hot loops.
    public var hasPrunedWeights: Bool { keptCount < mask.count }

    /// The bias mask, one entry per output, exactly `0` (pruned) or `1` (kept).
    public private(set) var biasMask: [Float] {
        didSet { keptBiasCount = Self.nonzeroCount(biasMask) }
    }

    /// The number of biases kept by the bias mask.
    public private(set) var keptBiasCount: Int

    /// Whether any bias is pruned.
    public var hasPrunedBiases: Bool { keptBiasCount < biasMask.count }

    /// Creates a layer with the given parameters and masks (all ones when `nil`).
    ///
    /// Weights and biases at masked positions are set to zero.
    /// - Precondition: the mask has the weight's shape, the bias mask one entry per output, and
    ///   both hold only `0` and `1`.
    public init(weight: Matrix, bias: [Float], mask: Matrix? = nil, biasMask: [Float]? = nil,
                activation: Activation = .identity) {
        let m = mask ?? Matrix(rows: weight.rows, columns: weight.columns, repeating: 1)
        precondition(m.rows == weight.rows && m.columns == weight.columns,
                     "PrunableDense: mask is \(m.rows)×\(m.columns), expected \(weight.rows)×\(weight.columns)")
        precondition(m.storage.allSatisfy { $0 == 0 || $0 == 1 }, "PrunableDense: mask entries must be 0 or 1")
        let bm = biasMask ?? [Float](repeating: 1, count: weight.rows)
        precondition(bm.count == weight.rows, "PrunableDense: bias mask has \(bm.count) entries, expected \(weight.rows)")
        precondition(bm.allSatisfy { $0 == 0 || $0 == 1 }, "PrunableDense: bias mask entries must be 0 or 1")
        self.mask = m
        self.keptCount = Self.nonzeroCount(m.storage)
        self.biasMask = bm
        self.keptBiasCount = Self.nonzeroCount(bm)
        super.init(weight: weight, bias: bias, activation: activation)
        applyMask()
    }

    /// Creates an `inputSize → outputSize` layer initialised as ``Dense`` is, with nothing pruned.
    public convenience init(_ inputSize: Int, _ outputSize: Int, activation: Activation = .identity,
                            using rng: inout SeededRandom) {
        let dense = Dense(inputSize, outputSize, activation: activation, using: &rng)
        self.init(dense)
    }

    /// Wraps a dense layer (copying its parameters) with full masks, or copies a prunable one with its masks.
    public convenience init(_ dense: Dense) {
        let prunable = dense as? PrunableDense
        self.init(weight: dense.weight, bias: dense.bias, mask: prunable?.mask, biasMask: prunable?.biasMask,
                  activation: dense.activation)
    }

    /// The fraction of weights pruned, `1 − kept / count`.
    public var sparsity: Double { weight.count == 0 ? 0 : 1 - Double(keptCount) / Double(weight.count) }

    /// Prunes every weight at flat index `i` (row-major in `[out, in]`) for which `shouldPrune(i)` is true.
    ///
    /// Masks only shrink: already-pruned weights stay pruned.
    public func prune(where shouldPrune: (Int) -> Bool) {
        var newMask = mask
        for i in 0..<newMask.count where newMask.storage[i] != 0 && shouldPrune(i) {
            newMask.storage[i] = 0
            weight.storage[i] = 0
        }
        mask = newMask
    }

    /// Prunes every bias at index `j` for which `shouldPrune(j)` is true.
    ///
    /// Masks only shrink: already-pruned biases stay pruned.
    public func pruneBiases(where shouldPrune: (Int) -> Bool) {
        pruneKeptBiases { j, _ in shouldPrune(j) }
    }

    /// The number of non-zero mask entries, counted branch-free (this runs after every mask change).
    private static func nonzeroCount(_ m: [Float]) -> Int {
        m.withUnsafeBufferPointer { b in
            // Mask entries are exactly 0 or 1.0 (0x3F80_0000, bit 29 set): integer bit arithmetic
            // counts them without branches.
            var n: UInt32 = 0
            for v in b { n &+= (v.bitPattern >> 29) & 1 }
            return Int(n)
        }
    }

    /// Prunes, in one pass over unsafe buffers, every kept weight whose flat index `i` and value `w`
    /// satisfy `shouldPrune(i, w)`; returns how many were pruned. The fast path of ``Pruner``.
    @discardableResult
    func pruneKept(where shouldPrune: (Int, Float) -> Bool) -> Int {
        let before = keptCount
        mask.storage.withUnsafeMutableBufferPointer { m in
            weight.storage.withUnsafeMutableBufferPointer { w in
                // Branch-free; an already-pruned weight (mask 0, weight 0) is unchanged whatever the answer.
                for i in 0..<m.count {
                    let keep: UInt32 = 0 &- (shouldPrune(i, w[i]) ? 0 : 1)   // all ones to keep, 0 to cut
                    m[i] = Float(bitPattern: m[i].bitPattern & keep)
                    w[i] = Float(bitPattern: w[i].bitPattern & keep)
                }
            }
        }
        return before - keptCount
    }

    /// ``pruneKept(where:)`` for the biases: prunes every kept bias whose index `j` and value `b`
    /// satisfy `shouldPrune(j, b)`; returns how many were pruned.
    @discardableResult
    func pruneKeptBiases(where shouldPrune: (Int, Float) -> Bool) -> Int {
        let before = keptBiasCount
        var m = biasMask
        for j in 0..<m.count where m[j] != 0 && shouldPrune(j, bias[j]) {
            m[j] = 0
            bias[j] = 0
        }
        biasMask = m
        return before - keptBiasCount
    }

    /// Replaces the mask. Weights at newly masked positions become zero.
    ///
    /// - Precondition: same shape, entries `0` or `1`.
    public func setMask(_ newMask: Matrix) {
        precondition(newMask.rows == mask.rows && newMask.columns == mask.columns,
                     "PrunableDense.setMask: expected \(mask.rows)×\(mask.columns), got \(newMask.rows)×\(newMask.columns)")
        precondition(newMask.storage.allSatisfy { $0 == 0 || $0 == 1 }, "PrunableDense.setMask: entries must be 0 or 1")
        mask = newMask
        applyMask()
    }

    /// Replaces the bias mask. Biases at newly masked positions become zero.
    ///
    /// - Precondition: one entry per output, entries `0` or `1`.
    public func setBiasMask(_ newMask: [Float]) {
        precondition(newMask.count == biasMask.count,
                     "PrunableDense.setBiasMask: expected \(biasMask.count) entries, got \(newMask.count)")
        precondition(newMask.allSatisfy { $0 == 0 || $0 == 1 }, "PrunableDense.setBiasMask: entries must be 0 or 1")
        biasMask = newMask
        applyMask()
    }

    /// Restores the invariants `weight == weight ⊙ mask` and `bias == bias ⊙ biasMask` (call
    /// after writing `weight` or `bias` directly).
    public func applyMask() {
        if hasPrunedWeights {
            mask.storage.withUnsafeBufferPointer { m in
                weight.storage.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count { w[i] = m[i] != 0 ? w[i] : 0 }   // +0, never −0
                }
            }
        }
        if hasPrunedBiases {
            for j in 0..<bias.count where biasMask[j] == 0 { bias[j] = 0 }
        }
    }

    override func gradientView(_ raw: Matrix) -> Matrix {
        guard hasPrunedWeights else { return raw }
        var g = raw
        for i in 0..<g.count { g.storage[i] *= mask.storage[i] }
        return g
    }

    override func biasGradientView(_ raw: [Float]) -> [Float] {
        guard hasPrunedBiases else { return raw }
        return zip(raw, biasMask).map { $0 * $1 }
    }

    /// A deep copy with the same masks.
    public override func copy() -> Dense {
        PrunableDense(weight: weight, bias: bias, mask: mask, biasMask: biasMask, activation: activation)
    }
}
