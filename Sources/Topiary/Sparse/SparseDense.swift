/// A fully connected layer whose weight is stored compressed: `y = f(W·x + b)` with `W` a ``CSRMatrix``.
///
/// Built from a ``Dense`` layer the way a quantised layer is built from a plain
/// one: only the non-zeros of the weight are kept, so the cost of a product grows with the
/// non-zeros instead of with `in × out`. The raw-buffer forward pass works on *feature-major*
/// activations (`[in, batch]` in, `[out, batch]` out), the layout the kernels vectorise over; the
/// `Matrix` convenience takes and returns the usual `[batch, features]`.
///
/// ```swift
/// let sparse = SparseDense(prunedLayer)        // same outputs as prunedLayer
/// let y = sparse(Matrix(rows: 32, columns: 784))
/// ```
@_spi(Kernels) public final class SparseDense {
    /// The weight, `[out, in]`, compressed.
    public let weight: CSRMatrix
    /// The bias, one per output.
    public let bias: [Float]
    /// The non-linearity applied after the affine map.
    public let activation: Activation
    let operand: SparseKernels.Operand

    /// The number of inputs.
    public var inputSize: Int { weight.columns }
    /// The number of outputs.
    public var outputSize: Int { weight.rows }
    /// The fraction of weights not stored.
    public var sparsity: Double { weight.sparsity }

    /// Creates a layer from a compressed weight, a bias and an activation.
    ///
    /// - Precondition: `bias.count == weight.rows`.
    public init(weight: CSRMatrix, bias: [Float], activation: Activation = .identity) {
        require(bias.count == weight.rows,
                     "SparseDense: bias has \(bias.count) entries, expected \(weight.rows) (one per output)")
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.operand = SparseKernels.Operand(weight)
    }

    /// Compresses a dense layer (its weight's exact zeros are dropped), copying its bias and activation.
    public convenience init(_ layer: Dense) {
        self.init(weight: CSRMatrix(layer), bias: layer.bias, activation: layer.activation)
    }

    /// Forward pass on feature-major buffers: `y[out, batch] = f(W · x[in, batch] + b)`.
    ///
    /// `x` has row stride `ldx ≥ batch`, `y` row stride `ldy ≥ batch` (both default to `batch`).
    /// - Parameters:
    ///   - threads: the number of threads (the calling one included) the product is split
    ///     across, by panels of the batch when there are enough, else by rows; products of a
    ///     few microseconds run on one unless a pool worker is already awake, and mid-size ones
    ///     on one or two, whichever their kind ran faster on (see ``SparseKernels``). Unlike
    ///     ``callAsFunction(_:threads:)`` it is not lowered to the processors: tests and
    ///     benchmarks oversubscribe on purpose.
    ///   - variant: the kernel variant; `nil` picks ``SparseKernels/bestVariant``.
    /// - Precondition: `variant` is supported by this CPU.
    /// - Complexity: O(nnz · batch + out · batch).
    @_spi(Kernels) public func forward(featureMajor x: UnsafePointer<Float>, batch: Int, into y: UnsafeMutablePointer<Float>,
                        ldx: Int? = nil, ldy: Int? = nil, threads: Int = 1,
                        variant: SparseKernels.Variant? = nil) {
        let v = variant ?? SparseKernels.bestVariant
        require(v.isSupported, "SparseDense.forward: this CPU cannot run the \(v) kernels")
        bias.withUnsafeBufferPointer { b in
            operand.multiply(x, ldx: ldx ?? batch, into: y, ldy: ldy ?? batch, batch: batch,
                             bias: b.baseAddress, activation: activation, threads: threads, variant: v)
        }
    }

    /// Applies the layer to a batch `[batch, in]`, returning `[batch, out]`, on `threads`
    /// threads (`nil`: ``Threads/count``), at most the processors the process may run on.
    ///
    /// A batch of the wrong width stops the program with a message naming both widths, in
    /// release builds too.
    public func callAsFunction(_ x: Matrix, threads: Int? = nil) -> Matrix {
        callAsFunction(x, threads: threads, variant: nil)
    }

    /// ``callAsFunction(_:threads:)`` with a chosen kernel variant (`nil`: the best this CPU runs).
    @_spi(Kernels) public func callAsFunction(_ x: Matrix, threads: Int? = nil, variant: SparseKernels.Variant?) -> Matrix {
        require(x.columns == inputSize,
                "SparseDense(\(inputSize) => \(outputSize)): expected input with \(inputSize) columns, got \(x.rows)×\(x.columns)")
        let batch = x.rows
        guard batch > 0 else { return Matrix(rows: 0, columns: outputSize) }
        let xt = x.transposed
        var yt = Matrix(rows: outputSize, columns: batch)
        xt.storage.withUnsafeBufferPointer { px in
            yt.storage.withUnsafeMutableBufferPointer { py in
                guard let px = px.baseAddress, let py = py.baseAddress else { return }
                forward(featureMajor: px, batch: batch, into: py, threads: Threads.usable(threads ?? Threads.count), variant: variant)
            }
        }
        return yt.transposed
    }
}
