/// A network: dense layers applied in order (Flux's `Chain`).
///
/// ```swift
/// let net = Chain(sizes: [784, 300, 100, 10], seed: 0)   // LeNet-300-100, ReLU hidden layers
/// let logits = net(Matrix(rows: 32, columns: 784))       // 32 × 10
/// ```
public final class Chain {
    /// The layers, input first.
    public var layers: [Dense]

    /// Creates a network from layers.
    ///
    /// - Precondition: at least one layer, and each layer's input size equals the previous output size.
    public init(_ layers: [Dense]) {
        precondition(!layers.isEmpty, "Chain: needs at least one layer")
        for l in 1..<max(1, layers.count) {
            precondition(layers[l].inputSize == layers[l - 1].outputSize,
                         "Chain: layer \(l) expects \(layers[l].inputSize) inputs, layer \(l - 1) gives \(layers[l - 1].outputSize)")
        }
        self.layers = layers
    }

    /// Creates a multilayer perceptron of ``PrunableDense`` layers with the given sizes
    /// (`[784, 300, 100, 10]` is LeNet-300-100): `hidden` after every layer but the last, `output` after it.
    public convenience init(sizes: [Int], hidden: Activation = .relu, output: Activation = .identity, seed: UInt64) {
        precondition(sizes.count >= 2, "Chain(sizes:): needs at least an input and an output size, got \(sizes)")
        var rng = SeededRandom(seed: seed)
        var layers: [Dense] = []
        for l in 0..<(sizes.count - 1) {
            let act = l == sizes.count - 2 ? output : hidden
            layers.append(PrunableDense(sizes[l], sizes[l + 1], activation: act, using: &rng))
        }
        self.init(layers)
    }

    /// The layer sizes, input first (`[784, 300, 100, 10]`).
    public var sizes: [Int] { [layers[0].inputSize] + layers.map(\.outputSize) }
    /// The number of inputs.
    public var inputSize: Int { layers[0].inputSize }
    /// The number of outputs.
    public var outputSize: Int { layers[layers.count - 1].outputSize }
    /// The layers that carry a mask.
    public var prunableLayers: [PrunableDense] { layers.compactMap { $0 as? PrunableDense } }
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

    /// A deep copy (parameters and masks).
    public func copy() -> Chain { Chain(layers.map { $0.copy() }) }

    /// Applies the network to a batch `[batch, in]`, returning `[batch, out]`.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        precondition(x.columns == inputSize, "Chain: expected input with \(inputSize) columns, got \(x.columns)")
        var workspace = Workspace(for: self, batchCapacity: max(1, x.rows))
        var y = Matrix(rows: x.rows, columns: outputSize)
        x.storage.withUnsafeBufferPointer { px in
            let out = forward(px.baseAddress!, batch: x.rows, workspace: &workspace)
            y.storage.withUnsafeMutableBufferPointer { py in py.baseAddress!.update(from: out, count: py.count) }
        }
        return y
    }

    /// Buffers for the forward and backward passes of one batch size, allocated once and reused
    /// so that the training loop allocates nothing per batch.
    public struct Workspace {
        /// Post-activation outputs of each layer, `[batchCapacity, out_l]`.
        var activations: [UnsafeMutableBufferPointer<Float>]
        /// Two gradient buffers of `[batchCapacity, max width]`, used in turn.
        var gradients: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>)
        /// The largest batch this workspace holds.
        public let batchCapacity: Int
        private let owner: Storage

        final class Storage {
            var buffers: [UnsafeMutableBufferPointer<Float>] = []
            deinit { for b in buffers { b.deallocate() } }
        }

        /// Allocates buffers for `network` and batches of up to `batchCapacity` rows.
        public init(for network: Chain, batchCapacity: Int) {
            precondition(batchCapacity > 0, "Workspace: batch capacity must be positive")
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
        public func fits(_ network: Chain, batch: Int) -> Bool {
            batch <= batchCapacity && activations.count == network.layers.count
                && zip(activations, network.layers).allSatisfy { $0.count >= batchCapacity * $1.outputSize }
                && gradients.0.count >= batchCapacity * (network.sizes.max() ?? 1)
        }

        /// The gradient buffer the loss writes `∂L/∂output` into before ``Chain/backward(_:batch:workspace:)``.
        public var outputGradient: UnsafeMutablePointer<Float> { gradients.0.baseAddress! }
    }

    /// Forward pass of `batch` rows through the workspace; returns the output `[batch, out]`,
    /// valid until the next call with this workspace.
    @discardableResult
    public func forward(_ input: UnsafePointer<Float>, batch: Int, workspace: inout Workspace) -> UnsafeMutablePointer<Float> {
        precondition(workspace.fits(self, batch: batch), "Chain.forward: workspace does not fit this network and batch \(batch)")
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
    public func backward(_ input: UnsafePointer<Float>, batch: Int, workspace: inout Workspace) {
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
