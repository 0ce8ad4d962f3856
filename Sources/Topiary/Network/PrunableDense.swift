/// A dense layer times a binary mask: the article's `PrunableDense`.
///
/// The invariant `weight == weight ⊙ mask` always holds: pruned weights are stored as exact
/// zeros, so the forward pass is still one `sgemm`; the weight gradient is masked, and optimizers
/// mask the gradient, their update and their state in one fused pass, so a pruned weight stays
/// exactly `0.0` through any number of steps, weight decay included.
///
/// ```swift
/// var rng = SeededRandom(seed: 0)
/// let layer = PrunableDense(784, 300, activation: .relu, using: &rng)
/// layer.prune { i in abs(layer.weight.storage[i]) < 0.01 }
/// ```
public final class PrunableDense: Dense {
    /// The mask, `[out, in]`, with entries exactly `0` (pruned) or `1` (kept).
    public private(set) var mask: Matrix {
        didSet { keptCount = Self.nonzeroCount(mask) }
    }

    /// The number of weights kept by the mask.
    public private(set) var keptCount: Int

    /// Whether any weight is pruned; when none is, masking is skipped in the hot loops.
    public var hasPrunedWeights: Bool { keptCount < mask.count }

    /// Creates a layer with the given parameters and mask (all ones when `mask` is `nil`).
    ///
    /// Weights at masked positions are set to zero.
    /// - Precondition: the mask has the weight's shape and holds only `0` and `1`.
    public init(weight: Matrix, bias: [Float], mask: Matrix? = nil, activation: Activation = .identity) {
        let m = mask ?? Matrix(rows: weight.rows, columns: weight.columns, repeating: 1)
        precondition(m.rows == weight.rows && m.columns == weight.columns,
                     "PrunableDense: mask is \(m.rows)×\(m.columns), expected \(weight.rows)×\(weight.columns)")
        precondition(m.storage.allSatisfy { $0 == 0 || $0 == 1 }, "PrunableDense: mask entries must be 0 or 1")
        self.mask = m
        self.keptCount = Self.nonzeroCount(m)
        super.init(weight: weight, bias: bias, activation: activation)
        applyMask()
    }

    /// Creates an `inputSize → outputSize` layer initialised as ``Dense`` is, with nothing pruned.
    public convenience init(_ inputSize: Int, _ outputSize: Int, activation: Activation = .identity,
                            using rng: inout SeededRandom) {
        let dense = Dense(inputSize, outputSize, activation: activation, using: &rng)
        self.init(dense)
    }

    /// Wraps a dense layer (copying its parameters) with a full mask.
    public convenience init(_ dense: Dense) {
        self.init(weight: dense.weight, bias: dense.bias, mask: (dense as? PrunableDense)?.mask,
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

    /// The number of non-zero mask entries, counted branch-free (this runs after every mask change).
    private static func nonzeroCount(_ m: Matrix) -> Int {
        m.storage.withUnsafeBufferPointer { b in
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

    /// Restores the invariant `weight == weight ⊙ mask` (call after writing `weight` directly).
    public func applyMask() {
        guard hasPrunedWeights else { return }
        mask.storage.withUnsafeBufferPointer { m in
            weight.storage.withUnsafeMutableBufferPointer { w in
                for i in 0..<w.count { w[i] = m[i] != 0 ? w[i] : 0 }   // +0, never −0
            }
        }
    }

    override func gradientView(_ raw: Matrix) -> Matrix {
        guard hasPrunedWeights else { return raw }
        var g = raw
        for i in 0..<g.count { g.storage[i] *= mask.storage[i] }
        return g
    }

    /// A deep copy with the same mask.
    public override func copy() -> Dense {
        PrunableDense(weight: weight, bias: bias, mask: mask, activation: activation)
    }
}
