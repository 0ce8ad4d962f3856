infix operator => : RangeFormationPrecedence

/// The shape of a ``Dense`` layer, written `input => output` as in Flux: `Dense(784 => 300, .relu)`.
public struct LayerShape: Hashable, Sendable, CustomStringConvertible {
    /// The number of inputs.
    public var input: Int
    /// The number of outputs (neurons).
    public var output: Int

    /// Creates a shape.
    init(input: Int, output: Int) {
        self.input = input
        self.output = output
    }

    /// `input => output`.
    public var description: String { "\(input) => \(output)" }
}

/// The shape `input => output` of a layer.
public func => (input: Int, output: Int) -> LayerShape { LayerShape(input: input, output: output) }

/// A fully connected layer, `y = f(W·x + b)`, with the weight stored `[out, in]` and an optional
/// mask: the article's `PrunableDense` and Flux's `Dense` in one type.
///
/// A layer without a mask (``mask`` is `nil`) is dense and costs nothing extra in training. Pruning
/// (``prune(where:)``, ``prune(indices:)``, or a ``Pruner``) gives it a mask, and from then on the
/// invariant `weight == weight ⊙ mask` always holds: pruned weights are exact zeros, so the forward
/// pass is still one `sgemm`; the weight gradient is masked, and optimizers mask the update and
/// their state in one fused pass, so a pruned weight stays exactly `0.0` through any number of
/// steps, weight decay included. ``weight`` and ``bias`` can only be changed through methods that
/// keep the invariant (``setParameters(weight:bias:)`` re-applies the mask).
///
/// Biases have their own optional mask, ``biasMask``, used only when biases are pruned (see
/// ``Pruner/includeBiases``). It obeys the same rules.
///
/// `Dense` is a class: a ``Chain`` holds its layers by reference, and pruning or training changes
/// them in place. ``copy()`` makes an independent layer.
///
/// The default initialisation is PyTorch's `nn.Linear`: Kaiming-uniform with `a = √5`, that is
/// weights and biases drawn from `U(−1/√in, 1/√in)`.
///
/// ```swift
/// let layer = try Dense(784 => 300, .relu, seed: 0)
/// try layer.prune { i in abs(layer.weight.storage[i]) < 0.01 }   // masks only shrink
/// let y = layer(Matrix(rows: 1, columns: 784))                     // 1 × 300
/// ```
public final class Dense {
    /// The number of inputs.
    public var inputSize: Int { weight.columns }
    /// The number of outputs (neurons).
    public var outputSize: Int { weight.rows }
    /// The shape, `inputSize => outputSize`.
    public var shape: LayerShape { inputSize => outputSize }
    /// The weight, `[out, in]`; exactly zero wherever ``mask`` is zero.
    public internal(set) var weight: Matrix
    /// The bias, one per output; exactly zero wherever ``biasMask`` is zero.
    public internal(set) var bias: [Float]
    /// The non-linearity applied after the affine map.
    public var activation: Activation

    /// The weight mask, `[out, in]`, entries exactly `0` (pruned) or `1` (kept); `nil` for a dense layer.
    public private(set) var mask: Matrix? {
        didSet { keptCount = mask.map { Self.nonzeroCount($0.storage) } ?? weight.count }
    }
    /// The bias mask, one entry per output, `0` or `1`; `nil` unless biases were pruned.
    public private(set) var biasMask: [Float]? {
        didSet { keptBiasCount = biasMask.map(Self.nonzeroCount) ?? bias.count }
    }
    /// The number of weights the mask keeps (all of them without a mask).
    private(set) var keptCount: Int
    /// The number of biases the bias mask keeps.
    private(set) var keptBiasCount: Int

    /// `∂L/∂W` from the last backward pass, `[out, in]`, zero at pruned positions.
    public var weightGradient: Matrix {
        guard hasPrunedWeights, let mask else { return rawWeightGradient }
        var g = rawWeightGradient
        for i in 0..<g.count { g.storage[i] *= mask.storage[i] }
        return g
    }
    /// The unmasked weight gradient as `sgemm` left it; optimizers read it and apply the mask in
    /// the same pass as the update, so the training loop never spends a separate pass on masking.
    var rawWeightGradient: Matrix
    /// `∂L/∂b` from the last backward pass, zero at pruned biases.
    public var biasGradient: [Float] {
        guard hasPrunedBiases, let biasMask else { return rawBiasGradient }
        return zip(rawBiasGradient, biasMask).map { $0 * $1 }
    }
    /// The unmasked bias gradient; optimizers apply the bias mask in the update itself.
    var rawBiasGradient: [Float]

    /// Creates a layer with the given parameters and, optionally, masks.
    ///
    /// Weights and biases at masked positions are set to zero.
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the bias or a mask does not fit the
    ///   weight, ``TopiaryError/Kind/invalidOption`` when a mask holds values other than `0` and `1`.
    public convenience init(weight: Matrix, bias: [Float], activation: Activation = .identity,
                            mask: Matrix? = nil, biasMask: [Float]? = nil) throws {
        let shape = "Dense(\(weight.columns) => \(weight.rows))"
        guard bias.count == weight.rows else {
            throw TopiaryError(.invalidShape, "\(shape): the bias has \(bias.count) entries, expected \(weight.rows) (one per output)")
        }
        try Self.check(mask: mask, biasMask: biasMask, rows: weight.rows, columns: weight.columns, layer: shape)
        self.init(checkedWeight: weight, bias: bias, activation: activation, mask: mask, biasMask: biasMask)
    }

    /// The designated initialiser, for callers that have checked the shapes and masks.
    init(checkedWeight weight: Matrix, bias: [Float], activation: Activation = .identity,
         mask: Matrix? = nil, biasMask: [Float]? = nil) {
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.mask = mask
        self.biasMask = biasMask
        self.keptCount = mask.map { Self.nonzeroCount($0.storage) } ?? weight.count
        self.keptBiasCount = biasMask.map(Self.nonzeroCount) ?? bias.count
        self.rawWeightGradient = Matrix(rows: weight.rows, columns: weight.columns)
        self.rawBiasGradient = [Float](repeating: 0, count: bias.count)
        applyMask()
    }

    /// Creates an `input => output` layer initialised as PyTorch's `nn.Linear`, drawing from `rng`.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` for sizes below 1 or a weight of more than 2³¹ entries.
    public convenience init(_ shape: LayerShape, _ activation: Activation = .identity,
                            using rng: inout SeededRandom) throws {
        let (k, m) = (shape.input, shape.output)
        guard k > 0, m > 0 else {
            throw TopiaryError(.invalidShape, "Dense(\(shape)): sizes must be positive")
        }
        guard k.multipliedReportingOverflow(by: m).partialValue < 1 << 31, k < 1 << 31, m < 1 << 31 else {
            throw TopiaryError(.invalidShape, "Dense(\(shape)): more than 2³¹ weights are not supported")
        }
        self.init(initialized: shape, activation, using: &rng)
    }

    /// ``init(_:_:using:)`` for a shape known to be valid.
    convenience init(initialized shape: LayerShape, _ activation: Activation, using rng: inout SeededRandom) {
        let (k, m) = (shape.input, shape.output)
        let bound = 1 / Float(k).squareRoot()
        var w = Matrix(rows: m, columns: k)
        for i in 0..<w.count { w.storage[i] = rng.nextUniform(-bound, bound) }
        let b = (0..<m).map { _ in rng.nextUniform(-bound, bound) }
        self.init(checkedWeight: w, bias: b, activation: activation)
    }

    /// Creates an `input => output` layer initialised as PyTorch's `nn.Linear` from `seed`.
    ///
    /// - Throws: as ``init(_:_:using:)``.
    public convenience init(_ shape: LayerShape, _ activation: Activation = .identity, seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        try self.init(shape, activation, using: &rng)
    }

    /// The number of weights and biases.
    public var parameterCount: Int { weight.count + bias.count }

    /// Whether any weight or bias is pruned (masked out).
    public var isPruned: Bool { hasPrunedWeights || hasPrunedBiases }
    /// Whether any weight is masked out; when none is, masking is skipped in the hot loops.
    var hasPrunedWeights: Bool { keptCount < weight.count }
    /// Whether any bias is masked out.
    var hasPrunedBiases: Bool { keptBiasCount < bias.count }

    // MARK: Changing the parameters and masks (each keeps the invariant)

    /// Prunes every weight at flat index `i` (row-major in `[out, in]`) for which `shouldPrune(i)`
    /// is true, giving the layer a mask if it had none.
    ///
    /// Masks only shrink: already-pruned weights stay pruned.
    public func prune(where shouldPrune: (Int) throws -> Bool) rethrows {
        // The mask is built first and applied once: if `shouldPrune` throws, nothing changes.
        var newMask = mask ?? Matrix(rows: weight.rows, columns: weight.columns, repeating: 1)
        for i in 0..<newMask.count where try newMask.storage[i] != 0 && shouldPrune(i) {
            newMask.storage[i] = 0
        }
        mask = newMask
        applyMask()
    }

    /// Prunes the weights at the given flat indices (row-major in `[out, in]`).
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` for an index outside `0..<weight.count`
    ///   (nothing is pruned then).
    public func prune<S: Sequence>(indices: S) throws where S.Element == Int {
        let list = Array(indices)
        if let bad = list.first(where: { !(0..<weight.count).contains($0) }) {
            throw TopiaryError(.invalidShape, "\(self.shapeName): weight index \(bad) is outside 0..<\(weight.count)")
        }
        var newMask = mask ?? Matrix(rows: weight.rows, columns: weight.columns, repeating: 1)
        for i in list {
            newMask.storage[i] = 0
            weight.storage[i] = 0
        }
        mask = newMask
    }

    /// Prunes every bias at index `j` for which `shouldPrune(j)` is true.
    ///
    /// Masks only shrink: already-pruned biases stay pruned.
    public func pruneBiases(where shouldPrune: (Int) throws -> Bool) rethrows {
        var m = biasMask ?? [Float](repeating: 1, count: bias.count)
        for j in 0..<m.count where try m[j] != 0 && shouldPrune(j) {
            m[j] = 0
        }
        biasMask = m
        applyMask()
    }

    /// Replaces the weight (and, when given, the bias), then re-applies the masks: entries at
    /// pruned positions become zero whatever the new values hold.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the shapes differ from the layer's.
    public func setParameters(weight newWeight: Matrix, bias newBias: [Float]? = nil) throws {
        guard newWeight.rows == weight.rows, newWeight.columns == weight.columns else {
            throw TopiaryError(.invalidShape, "\(shapeName): the new weight is \(newWeight.rows)×\(newWeight.columns), expected \(weight.rows)×\(weight.columns)")
        }
        if let newBias, newBias.count != bias.count {
            throw TopiaryError(.invalidShape, "\(shapeName): the new bias has \(newBias.count) entries, expected \(bias.count)")
        }
        weight = newWeight
        if let newBias { bias = newBias }
        applyMask()
    }

    /// Replaces the weight mask (`nil` removes it). Weights at newly masked positions become zero.
    ///
    /// Unlike pruning, this can also revive weights (they restart from zero).
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the mask does not have the weight's shape,
    ///   ``TopiaryError/Kind/invalidOption`` when it holds values other than `0` and `1`.
    public func setMask(_ newMask: Matrix?) throws {
        try Self.check(mask: newMask, biasMask: nil, rows: weight.rows, columns: weight.columns, layer: shapeName)
        mask = newMask
        applyMask()
    }

    /// Replaces the bias mask (`nil` removes it). Biases at newly masked positions become zero.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when it does not have one entry per output,
    ///   ``TopiaryError/Kind/invalidOption`` when it holds values other than `0` and `1`.
    public func setBiasMask(_ newMask: [Float]?) throws {
        try Self.check(mask: nil, biasMask: newMask, rows: weight.rows, columns: weight.columns, layer: shapeName)
        biasMask = newMask
        applyMask()
    }

    /// Removes the masks: the layer becomes dense again. Pruned weights stay zero until training
    /// moves them.
    public func unmask() {
        mask = nil
        biasMask = nil
    }

    /// Restores `weight == weight ⊙ mask` and `bias == bias ⊙ biasMask` after an internal write.
    func applyMask() {
        if hasPrunedWeights, let mask {
            mask.storage.withUnsafeBufferPointer { m in
                weight.storage.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count { w[i] = m[i] != 0 ? w[i] : 0 }   // +0, never −0
                }
            }
        }
        if hasPrunedBiases, let biasMask {
            for j in 0..<bias.count where biasMask[j] == 0 { bias[j] = 0 }
        }
    }

    /// Gives the layer an all-ones weight mask (and bias mask) if it has none, so that the
    /// pruner's fast paths can read one.
    func materializeMasks(biases: Bool) {
        if mask == nil { mask = Matrix(rows: weight.rows, columns: weight.columns, repeating: 1) }
        if biases, biasMask == nil { biasMask = [Float](repeating: 1, count: bias.count) }
    }

    /// Prunes, in one pass over unsafe buffers, every kept weight whose flat index `i` and value `w`
    /// satisfy `shouldPrune(i, w)`; returns how many were pruned. The fast path of ``Pruner``.
    @discardableResult
    func pruneKept(where shouldPrune: (Int, Float) -> Bool) -> Int {
        materializeMasks(biases: false)
        let before = keptCount
        var m = mask ?? Matrix(rows: 0, columns: 0)
        mask = nil   // moved out so that the buffer is uniquely referenced while written
        m.storage.withUnsafeMutableBufferPointer { m in
            weight.storage.withUnsafeMutableBufferPointer { w in
                // Branch-free; an already-pruned weight (mask 0, weight 0) is unchanged whatever the answer.
                for i in 0..<m.count {
                    let keep: UInt32 = 0 &- (shouldPrune(i, w[i]) ? 0 : 1)   // all ones to keep, 0 to cut
                    m[i] = Float(bitPattern: m[i].bitPattern & keep)
                    w[i] = Float(bitPattern: w[i].bitPattern & keep)
                }
            }
        }
        mask = m
        return before - keptCount
    }

    /// ``pruneKept(where:)`` for the biases: prunes every kept bias whose index `j` and value `b`
    /// satisfy `shouldPrune(j, b)`; returns how many were pruned.
    @discardableResult
    func pruneKeptBiases(where shouldPrune: (Int, Float) -> Bool) -> Int {
        let before = keptBiasCount
        var m = biasMask ?? [Float](repeating: 1, count: bias.count)
        for j in 0..<m.count where m[j] != 0 && shouldPrune(j, bias[j]) {
            m[j] = 0
            bias[j] = 0
        }
        biasMask = m
        return before - keptBiasCount
    }

    private static func check(mask: Matrix?, biasMask: [Float]?, rows: Int, columns: Int, layer: String) throws {
        if let mask {
            guard mask.rows == rows, mask.columns == columns else {
                throw TopiaryError(.invalidShape, "\(layer): the mask is \(mask.rows)×\(mask.columns), expected \(rows)×\(columns)")
            }
            if let bad = mask.storage.first(where: { $0 != 0 && $0 != 1 }) {
                throw TopiaryError(.invalidOption, "\(layer): mask entries must be 0 or 1, got \(bad)")
            }
        }
        if let biasMask {
            guard biasMask.count == rows else {
                throw TopiaryError(.invalidShape, "\(layer): the bias mask has \(biasMask.count) entries, expected \(rows)")
            }
            if let bad = biasMask.first(where: { $0 != 0 && $0 != 1 }) {
                throw TopiaryError(.invalidOption, "\(layer): bias mask entries must be 0 or 1, got \(bad)")
            }
        }
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

    /// `Dense(784 => 300)`, for messages.
    var shapeName: String { "Dense(\(shape))" }

    // MARK: Forward and backward passes

    /// Forward pass on raw buffers: `output[batch, out] = f(input[batch, in] · Wᵀ + b)`.
    func forward(_ input: UnsafePointer<Float>, batch: Int, into output: UnsafeMutablePointer<Float>) {
        let (m, k) = (outputSize, inputSize)
        weight.storage.withUnsafeBufferPointer { w in
            guard let w = w.baseAddress else { return }
            if batch == 1 {
                BLAS.gemv(.none, rows: m, columns: k, a: w, lda: k, x: input, y: output)
            } else {
                BLAS.gemm(.none, .transpose, m: batch, n: m, k: k,
                          a: input, lda: k, b: w, ldb: k, c: output, ldc: m)
            }
        }
        bias.withUnsafeBufferPointer { b in
            guard let b = b.baseAddress else { return }
            activation.addBiasAndApply(output, bias: b, batch: batch, width: m)
        }
    }

    /// Backward pass on raw buffers.
    ///
    /// On entry `outputGradient` holds `∂L/∂y` `[batch, out]`; it is overwritten with `∂L/∂z`.
    /// Sets the raw weight gradient `(∂L/∂z)ᵀ · input` and bias gradient `Σ_batch ∂L/∂z`, and,
    /// when `inputGradient` is given, writes `∂L/∂x = (∂L/∂z) · W` `[batch, in]` into it.
    func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                  outputGradient: UnsafeMutablePointer<Float>, batch: Int,
                  inputGradient: UnsafeMutablePointer<Float>?) {
        let (m, k) = (outputSize, inputSize)
        rawBiasGradient.withUnsafeMutableBufferPointer { gb in
            guard let gb = gb.baseAddress else { return }
            activation.backward(output: output, gradient: outputGradient, batch: batch, width: m, biasGradient: gb)
        }
        rawWeightGradient.storage.withUnsafeMutableBufferPointer { gw in
            guard let gw = gw.baseAddress else { return }
            BLAS.gemm(.transpose, .none, m: m, n: k, k: batch,
                      a: outputGradient, lda: m, b: input, ldb: k, c: gw, ldc: k)
        }
        if let inputGradient {
            weight.storage.withUnsafeBufferPointer { w in
                guard let w = w.baseAddress else { return }
                BLAS.gemm(.none, .none, m: batch, n: k, k: m,
                          a: outputGradient, lda: m, b: w, ldb: k, c: inputGradient, ldc: k)
            }
        }
    }

    /// Applies the layer to a batch `[batch, in]`, returning `[batch, out]`.
    ///
    /// A batch of the wrong width stops the program with a message naming the layer and both
    /// widths, in release builds too; ``predict(_:)`` throws instead.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        do { return try predict(x) } catch { fatalError("\(error)") }
    }

    /// Applies the layer to a batch `[batch, in]`, returning `[batch, out]`.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when `x` does not have ``inputSize`` columns.
    public func predict(_ x: Matrix) throws -> Matrix {
        guard x.columns == inputSize else {
            throw TopiaryError(.invalidShape, "\(shapeName): expected input with \(inputSize) columns, got \(x.rows)×\(x.columns)")
        }
        var y = Matrix(rows: x.rows, columns: outputSize)
        guard x.rows > 0 else { return y }
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in
                guard let px = px.baseAddress, let py = py.baseAddress else { return }
                forward(px, batch: x.rows, into: py)
            }
        }
        return y
    }

    /// An independent copy of the layer, masks included.
    public func copy() -> Dense {
        Dense(checkedWeight: weight, bias: bias, activation: activation, mask: mask, biasMask: biasMask)
    }
}

extension Dense {
    /// The fraction of this layer's weights that are exactly zero.
    public var sparsity: Double {
        weight.count == 0 ? 0 : 1 - Double(weight.nonzeroCount) / Double(weight.count)
    }

    /// The number of biases that are not exactly zero.
    var nonzeroBiasCount: Int { bias.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }

    /// The fraction of this layer's weights and biases, counted together, that are exactly zero.
    public var parameterSparsity: Double {
        parameterCount == 0 ? 0 : 1 - Double(weight.nonzeroCount + nonzeroBiasCount) / Double(parameterCount)
    }

    /// The fraction of weights the mask removes, `1 − kept / count` (0 without a mask).
    var maskedFraction: Double { weight.count == 0 ? 0 : 1 - Double(keptCount) / Double(weight.count) }
}

extension Dense: CustomStringConvertible {
    /// `Dense(784 => 300, relu)`, with the sparsity when the layer is pruned.
    public var description: String {
        let act = activation == .identity ? "" : ", \(activation.rawValue)"
        guard isPruned else { return "Dense(\(shape)\(act))" }
        let percent = (sparsity * 1000).rounded() / 10
        return "Dense(\(shape)\(act), \(percent)% sparse)"
    }
}
