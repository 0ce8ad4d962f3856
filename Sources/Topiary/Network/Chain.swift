/// A network: dense layers applied in order (Flux's `Chain`).
///
/// `Chain` is a class, like its layers: training and pruning change a network in place, and
/// ``copy()`` makes an independent one. Every layer can be pruned; layer `l` of ``layers`` is
/// layer `l` for scopes, caps and reports.
///
/// ```swift
/// let net = try Chain(Dense(784 => 300, .relu, seed: 1), Dense(300 => 100, .relu, seed: 2), Dense(100 => 10, seed: 3))
/// let lenet = try Chain(sizes: [784, 300, 100, 10], seed: 0)   // LeNet-300-100, ReLU hidden layers
/// let logits = lenet(Matrix(rows: 32, columns: 784))           // 32 × 10
/// ```
public final class Chain {
    /// The layers, input first.
    public internal(set) var layers: [Dense]

    /// Creates a network from layers.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when there is no layer, or a layer's input size
    ///   differs from the previous layer's output size (the message names both layers and sizes).
    public init(_ layers: [Dense]) throws {
        guard !layers.isEmpty else { throw TopiaryError(.invalidShape, "Chain: needs at least one layer") }
        for l in 1..<layers.count where layers[l].inputSize != layers[l - 1].outputSize {
            throw TopiaryError(.invalidShape, "Chain: layer \(l) \(layers[l].shapeName) expects \(layers[l].inputSize) inputs, but layer \(l - 1) \(layers[l - 1].shapeName) gives \(layers[l - 1].outputSize)")
        }
        if let l = layers.indices.first(where: { i in layers[..<i].contains { $0 === layers[i] } }) {
            throw TopiaryError(.invalidShape, "Chain: layer \(l) is the same object as an earlier layer; use copy() to repeat a layer")
        }
        self.layers = layers
    }

    /// Creates a network from layers: `try Chain(Dense(784 => 300, .relu, seed: 1), Dense(300 => 10, seed: 2))`.
    ///
    /// - Throws: as ``init(_:)-([Dense])``.
    public convenience init(_ layers: Dense...) throws {
        try self.init(layers)
    }

    /// A network whose layers are known to chain (internal callers that built them so).
    init(checked layers: [Dense]) {
        self.layers = layers
    }

    /// Creates a multilayer perceptron with the given sizes (`[784, 300, 100, 10]` is
    /// LeNet-300-100): `hidden` after every layer but the last, `output` after it, initialised as
    /// ``Dense/init(_:_:using:)`` from one generator seeded with `seed`.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` for fewer than two sizes or a size below 1.
    public convenience init(sizes: [Int], hidden: Activation = .relu, output: Activation = .identity, seed: UInt64) throws {
        guard sizes.count >= 2 else {
            throw TopiaryError(.invalidShape, "Chain(sizes:): needs at least an input and an output size, got \(sizes)")
        }
        if let bad = sizes.first(where: { $0 < 1 || $0 >= 1 << 31 }) {
            throw TopiaryError(.invalidShape, "Chain(sizes:): every size must be between 1 and 2³¹ − 1, got \(bad) in \(sizes)")
        }
        for l in 0..<(sizes.count - 1) where sizes[l].multipliedReportingOverflow(by: sizes[l + 1]).partialValue >= 1 << 31 {
            throw TopiaryError(.invalidShape, "Chain(sizes:): layer \(l) (\(sizes[l]) => \(sizes[l + 1])) would have more than 2³¹ weights")
        }
        self.init(checkedSizes: sizes, hidden: hidden, output: output, seed: seed)
    }

    /// ``init(sizes:hidden:output:seed:)`` for sizes known to be valid.
    convenience init(checkedSizes sizes: [Int], hidden: Activation = .relu, output: Activation = .identity, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var layers: [Dense] = []
        for l in 0..<(sizes.count - 1) {
            let act = l == sizes.count - 2 ? output : hidden
            layers.append(Dense(initialized: sizes[l] => sizes[l + 1], act, using: &rng))
        }
        self.init(checked: layers)
    }

    /// The layer sizes, input first (`[784, 300, 100, 10]`).
    public var sizes: [Int] { [layers[0].inputSize] + layers.map(\.outputSize) }
    /// The number of inputs.
    public var inputSize: Int { layers[0].inputSize }
    /// The number of outputs.
    public var outputSize: Int { layers[layers.count - 1].outputSize }
    /// All weights and biases.
    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }
    /// Weights and biases that are not exactly zero.
    public var nonzeroParameterCount: Int {
        layers.reduce(0) { $0 + $1.weight.nonzeroCount + $1.nonzeroBiasCount }
    }
    /// All weights (biases excluded).
    public var weightCount: Int { layers.reduce(0) { $0 + $1.weight.count } }
    /// Weights that are not exactly zero.
    public var nonzeroWeightCount: Int { layers.reduce(0) { $0 + $1.weight.nonzeroCount } }
    /// The fraction of weights that are exactly zero (biases are not counted; see ``parameterSparsity``).
    public var sparsity: Double { weightCount == 0 ? 0 : 1 - Double(nonzeroWeightCount) / Double(weightCount) }
    /// The fraction of weights and biases, counted together, that are exactly zero: the sparsity
    /// reported when biases are pruned too (``Pruner/includeBiases``).
    public var parameterSparsity: Double {
        parameterCount == 0 ? 0 : 1 - Double(nonzeroParameterCount) / Double(parameterCount)
    }

    /// An independent copy (parameters and masks).
    public func copy() -> Chain { Chain(checked: layers.map { $0.copy() }) }

    /// Replaces every layer by those of `other` (same object identity of the chain, new layers).
    func replaceLayers(with other: Chain) { layers = other.layers }

    /// Applies the network to a batch `[batch, in]`, returning `[batch, out]`.
    ///
    /// A batch of the wrong width stops the program with a message naming the network's input
    /// width and the batch's shape, in release builds too; ``predict(_:)`` throws instead.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        do { return try predict(x) } catch { fatalError("\(error)") }
    }

    /// Applies the network to a batch `[batch, in]`, returning `[batch, out]` (the logits for a
    /// classifier).
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when `x` does not have ``inputSize`` columns.
    public func predict(_ x: Matrix) throws -> Matrix {
        guard x.columns == inputSize else {
            throw TopiaryError(.invalidShape, "Chain: layer 0 \(layers[0].shapeName) expects input with \(inputSize) columns, got \(x.rows)×\(x.columns)")
        }
        var y = Matrix(rows: x.rows, columns: outputSize)
        guard x.rows > 0 else { return y }
        var workspace = Workspace(for: self, batchCapacity: x.rows)
        x.storage.withUnsafeBufferPointer { px in
            guard let px = px.baseAddress else { return }
            let out = forward(px, batch: x.rows, workspace: &workspace)
            y.storage.withUnsafeMutableBufferPointer { py in py.baseAddress?.update(from: out, count: py.count) }
        }
        return y
    }

    /// Buffers for the forward and backward passes of one batch size, allocated once and reused
    /// so that the training loop allocates nothing per batch.
    @_spi(Benchmarking) public struct Workspace {
        /// Post-activation outputs of each layer, `[batchCapacity, out_l]`.
        var activations: [UnsafeMutableBufferPointer<Float>]
        /// Two gradient buffers of `[batchCapacity, max width]`, used in turn.
        var gradients: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>)
        /// The largest batch this workspace holds.
        let batchCapacity: Int
        private let owner: Storage

        final class Storage {
            var buffers: [UnsafeMutableBufferPointer<Float>] = []
            deinit { for b in buffers { b.deallocate() } }
        }

        /// Allocates buffers for `network` and batches of up to `batchCapacity` rows.
        public init(for network: Chain, batchCapacity: Int) {
            require(batchCapacity > 0, "Workspace: batch capacity must be positive")
            self.batchCapacity = batchCapacity
            let storage = Storage()
            func make(_ n: Int) -> UnsafeMutableBufferPointer<Float> {
                let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, n))
                b.initialize(repeating: 0)
                storage.buffers.append(b)
                return b
            }
            activations = network.layers.map { make(batchCapacity * $0.outputSize) }
            let width = network.sizes.max() ?? 1
            gradients = (make(batchCapacity * width), make(batchCapacity * width))
            owner = storage
        }

        /// Whether the buffers fit `network` (same layer widths) and `batch`.
        func fits(_ network: Chain, batch: Int) -> Bool {
            batch <= batchCapacity && activations.count == network.layers.count
                && zip(activations, network.layers).allSatisfy { $0.count >= batchCapacity * $1.outputSize }
                && gradients.0.count >= batchCapacity * (network.sizes.max() ?? 1)
        }

        /// The gradient buffer the loss writes `∂L/∂output` into before ``Chain/backward(_:batch:workspace:)``.
        var outputGradient: UnsafeMutablePointer<Float> { gradients.0.baseAddress! }
    }

    /// Forward pass of `batch` rows through the workspace; returns the output `[batch, out]`,
    /// valid until the next call with this workspace.
    @discardableResult
    @_spi(Benchmarking) public func forward(_ input: UnsafePointer<Float>, batch: Int, workspace: inout Workspace) -> UnsafeMutablePointer<Float> {
        require(workspace.fits(self, batch: batch), "Chain.forward: workspace does not fit this network and batch \(batch)")
        var x = input
        for (l, layer) in layers.enumerated() {
            let y = workspace.activations[l].baseAddress!
            layer.forward(x, batch: batch, into: y)
            x = UnsafePointer(y)
        }
        return workspace.activations[layers.count - 1].baseAddress!
    }

    /// Backward pass after ``forward(_:batch:workspace:)`` on the same input: reads `∂L/∂output`
    /// from ``Workspace/outputGradient`` and leaves each layer's parameter gradients in the layer.
    func backward(_ input: UnsafePointer<Float>, batch: Int, workspace: inout Workspace) {
        var g = workspace.gradients.0.baseAddress!
        var other = workspace.gradients.1.baseAddress!
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let x = l == 0 ? input : UnsafePointer(workspace.activations[l - 1].baseAddress!)
            layers[l].backward(input: x, output: workspace.activations[l].baseAddress!,
                               outputGradient: g, batch: batch, inputGradient: l == 0 ? nil : other)
            swap(&g, &other)
        }
    }
}

extension Chain: CustomStringConvertible {
    /// A table of the layers: shape, activation, parameters, sparsity.
    public var description: String {
        var lines = ["Chain(\(sizes.map(String.init).joined(separator: "-")), \(parameterCount) parameters, \(percent(sparsity)) sparse)"]
        for (l, layer) in layers.enumerated() {
            let pad = { (s: String, n: Int) in String(repeating: " ", count: max(0, n - s.count)) + s }
            lines.append("  \(l)  " + pad("\(layer.shape)", 12) + "  " + pad(layer.activation.rawValue, 8)
                         + "  " + pad("\(layer.parameterCount)", 9) + " params  " + pad(percent(layer.sparsity), 6) + " sparse")
        }
        return lines.joined(separator: "\n")
    }
}

/// `0.9` as `90.0%`.
func percent(_ fraction: Double) -> String {
    "\((fraction * 1000).rounded() / 10)%"
}
