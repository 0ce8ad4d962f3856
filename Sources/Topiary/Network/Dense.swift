/// A fully connected layer, `y = f(W·x + b)`, with the weight stored `[out, in]`.
///
/// Batches are row-major `[batch, in]` and the forward pass is one `sgemm`
/// (`Y = X · Wᵀ`) followed by a fused bias-and-activation pass.
///
/// The default initialisation is PyTorch's `nn.Linear`: Kaiming-uniform with `a = √5`, that is
/// weights and biases drawn from `U(−1/√in, 1/√in)`.
///
/// ```swift
/// var rng = SeededRandom(seed: 0)
/// let layer = Dense(784, 300, activation: .relu, using: &rng)
/// let y = layer(Matrix(rows: 1, columns: 784))   // 1 × 300
/// ```
public class Dense {
    /// The number of inputs.
    public var inputSize: Int { weight.columns }
    /// The number of outputs (neurons).
    public var outputSize: Int { weight.rows }
    /// The weight, `[out, in]`.
    public var weight: Matrix
    /// The bias, one per output.
    public var bias: [Float]
    /// The non-linearity applied after the affine map.
    public var activation: Activation
    /// `∂L/∂W` from the last `backward`, `[out, in]`; for a ``PrunableDense``, masked
    /// (zero at pruned positions).
    public internal(set) var weightGradient: Matrix {
        get { gradientView(rawWeightGradient) }
        set { rawWeightGradient = newValue }
    }
    /// The unmasked weight gradient as `sgemm` left it; optimizers read it and apply the mask in
    /// the same pass as the update, so the training loop never spends a separate pass on masking.
    var rawWeightGradient: Matrix
    /// `∂L/∂b` from the last `backward`; for a ``PrunableDense`` with pruned biases, masked.
    public internal(set) var biasGradient: [Float] {
        get { biasGradientView(rawBiasGradient) }
        set { rawBiasGradient = newValue }
    }
    /// The unmasked bias gradient; optimizers apply the bias mask in the update itself.
    var rawBiasGradient: [Float]

    /// Creates a layer with the given parameters.
    ///
    /// - Precondition: `bias.count == weight.rows`.
    public init(weight: Matrix, bias: [Float], activation: Activation = .identity) {
        precondition(bias.count == weight.rows,
                     "Dense: bias has \(bias.count) entries, expected \(weight.rows) (one per output)")
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.rawWeightGradient = Matrix(rows: weight.rows, columns: weight.columns)
        self.rawBiasGradient = [Float](repeating: 0, count: bias.count)
    }

    /// Creates an `inputSize → outputSize` layer initialised as PyTorch's `nn.Linear`.
    public convenience init(_ inputSize: Int, _ outputSize: Int, activation: Activation = .identity,
                            using rng: inout SeededRandom) {
        precondition(inputSize > 0 && outputSize > 0, "Dense: sizes must be positive, got \(inputSize) → \(outputSize)")
        let bound = 1 / Float(inputSize).squareRoot()
        var w = Matrix(rows: outputSize, columns: inputSize)
        for i in 0..<w.count { w.storage[i] = rng.nextUniform(-bound, bound) }
        let b = (0..<outputSize).map { _ in rng.nextUniform(-bound, bound) }
        self.init(weight: w, bias: b, activation: activation)
    }

    /// The number of weights and biases.
    public var parameterCount: Int { weight.count + bias.count }

    /// Forward pass on raw buffers: `output[batch, out] = f(input[batch, in] · Wᵀ + b)`.
    public func forward(_ input: UnsafePointer<Float>, batch: Int, into output: UnsafeMutablePointer<Float>) {
        let (m, k) = (outputSize, inputSize)
        weight.storage.withUnsafeBufferPointer { w in
            if batch == 1 {
                BLAS.gemv(.none, rows: m, columns: k, a: w.baseAddress!, lda: k, x: input, y: output)
            } else {
                BLAS.gemm(.none, .transpose, m: batch, n: m, k: k,
                          a: input, lda: k, b: w.baseAddress!, ldb: k, c: output, ldc: m)
            }
        }
        bias.withUnsafeBufferPointer { b in
            activation.addBiasAndApply(output, bias: b.baseAddress!, batch: batch, width: m)
        }
    }

    /// Backward pass on raw buffers.
    ///
    /// On entry `outputGradient` holds `∂L/∂y` `[batch, out]`; it is overwritten with `∂L/∂z`.
    /// Sets `weightGradient = (∂L/∂z)ᵀ · input` and `biasGradient = Σ_batch ∂L/∂z`, and, when
    /// `inputGradient` is given, writes `∂L/∂x = (∂L/∂z) · W` `[batch, in]` into it.
    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafeMutablePointer<Float>, batch: Int,
                         inputGradient: UnsafeMutablePointer<Float>?) {
        let (m, k) = (outputSize, inputSize)
        activation.backward(output: output, gradient: outputGradient, count: batch * m)
        rawWeightGradient.storage.withUnsafeMutableBufferPointer { gw in
            BLAS.gemm(.transpose, .none, m: m, n: k, k: batch,
                      a: outputGradient, lda: m, b: input, ldb: k, c: gw.baseAddress!, ldc: k)
        }
        rawBiasGradient.withUnsafeMutableBufferPointer { gb in
            for j in 0..<m { gb[j] = 0 }
            for r in 0..<batch {
                let row = outputGradient + r * m
                for j in 0..<m { gb[j] += row[j] }
            }
        }
        if let inputGradient {
            weight.storage.withUnsafeBufferPointer { w in
                BLAS.gemm(.none, .none, m: batch, n: k, k: m,
                          a: outputGradient, lda: m, b: w.baseAddress!, ldb: k, c: inputGradient, ldc: k)
            }
        }
    }

    /// What ``weightGradient`` shows of the raw gradient (``PrunableDense`` masks it).
    func gradientView(_ raw: Matrix) -> Matrix { raw }

    /// What ``biasGradient`` shows of the raw bias gradient (``PrunableDense`` masks it).
    func biasGradientView(_ raw: [Float]) -> [Float] { raw }

    /// Applies the layer to a batch `[batch, in]`, returning `[batch, out]`.
    ///
    /// - Precondition: `x.columns == inputSize`.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        precondition(x.columns == inputSize,
                     "Dense(\(inputSize) → \(outputSize)): expected input with \(inputSize) columns, got \(x.columns)")
        var y = Matrix(rows: x.rows, columns: outputSize)
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeMutableBufferPointer { py in
                forward(px.baseAddress!, batch: x.rows, into: py.baseAddress!)
            }
        }
        return y
    }

    /// A deep copy of the layer, keeping its concrete type.
    public func copy() -> Dense {
        Dense(weight: weight, bias: bias, activation: activation)
    }
}

extension Dense {
    /// The fraction of this layer's weights that are exactly zero.
    public var weightSparsity: Double {
        weight.count == 0 ? 0 : 1 - Double(weight.nonzeroCount) / Double(weight.count)
    }

    /// The number of biases that are not exactly zero.
    public var nonzeroBiasCount: Int { bias.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }

    /// The fraction of this layer's weights and biases, counted together, that are exactly zero.
    public var parameterSparsity: Double {
        parameterCount == 0 ? 0 : 1 - Double(weight.nonzeroCount + nonzeroBiasCount) / Double(parameterCount)
    }
}
