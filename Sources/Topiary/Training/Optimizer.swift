/// Updates a network's parameters from the gradients left by the last backward pass.
///
/// Every optimizer honours masks: for a pruned ``Dense`` layer the update and every state
/// buffer (velocity, moments) are multiplied by the mask (the weight mask for weights, the bias
/// mask for biases), so pruned weights and biases stay exactly `0.0` through any number of steps,
/// weight decay included, and state left over from before a pruning step never revives them.
public protocol Optimizer: AnyObject {
    /// The step size used by the next ``step(_:)``.
    var learningRate: Float { get set }
    /// Applies one update to every layer of `network`.
    func step(_ network: Chain)
    /// Forgets all state (velocities, moments, step counts), as a freshly made optimizer.
    func reset()
}

/// Per-parameter state buffers (velocities, moments), kept per layer and zeroed when first made or
/// when the layer changes shape (after structured pruning).
struct OptimizerState {
    final class Buffers {
        let layer: Dense   // kept alive so that its identifier is never reused by another layer
        let sizes: [Int]
        let pointers: [UnsafeMutablePointer<Float>]
        init(layer: Dense, sizes: [Int]) {
            self.layer = layer
            self.sizes = sizes
            pointers = sizes.map { n in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
                p.initialize(repeating: 0, count: max(1, n))
                return p
            }
        }
        deinit { for p in pointers { p.deallocate() } }
    }

    private var entries: [ObjectIdentifier: Buffers] = [:]

    /// `slots` buffers for the weight and `slots` for the bias of `layer`, in the order
    /// `[weight₀, bias₀, weight₁, bias₁, …]`.
    mutating func buffers(for layer: Dense, slots: Int) -> [UnsafeMutablePointer<Float>] {
        let sizes = (0..<slots).flatMap { _ in [layer.weight.count, layer.bias.count] }
        let id = ObjectIdentifier(layer)
        if let entry = entries[id], entry.sizes == sizes { return entry.pointers }
        let entry = Buffers(layer: layer, sizes: sizes)
        entries[id] = entry
        return entry.pointers
    }

    mutating func removeAll() { entries.removeAll() }
}

/// Calls `body(isWeight, parameter, gradient, mask)` for a layer's weight and bias, each with its
/// mask when something in it is pruned.
func forEachParameter(of layer: Dense,
                      _ body: (_ isWeight: Bool, UnsafeMutableBufferPointer<Float>,
                               UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>?) -> Void) {
    let mask = layer.hasPrunedWeights ? layer.mask : nil
    let biasMask = layer.hasPrunedBiases ? layer.biasMask : nil
    let wg = layer.rawWeightGradient   // unmasked: the masks are applied in the update itself
    let bg = layer.rawBiasGradient
    layer.weight.storage.withUnsafeMutableBufferPointer { w in
        wg.storage.withUnsafeBufferPointer { g in
            if let mask {
                mask.storage.withUnsafeBufferPointer { m in body(true, w, g, m) }
            } else {
                body(true, w, g, nil)
            }
        }
    }
    layer.bias.withUnsafeMutableBufferPointer { b in
        bg.withUnsafeBufferPointer { g in
            if let biasMask {
                biasMask.withUnsafeBufferPointer { m in body(false, b, g, m) }
            } else {
                body(false, b, g, nil)
            }
        }
    }
}

/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay,
/// with PyTorch's conventions:
///
/// ```text
/// g ← ∇ + λ·w;   v ← μ·v + g;   w ← w − η·(Nesterov ? g + μ·v : v)
/// ```
///
/// ```swift
/// let optimizer = SGD(learningRate: 0.05, momentum: 0.9)
/// ```
public final class SGD: Optimizer {
    /// The step size `η`.
    public var learningRate: Float
    /// The momentum `μ` (0 for plain SGD).
    public var momentum: Float
    /// Whether to use Nesterov momentum.
    public var nesterov: Bool
    /// The L2 penalty `λ` added to the gradient.
    public var weightDecay: Float
    private var state = OptimizerState()

    /// Creates the optimizer.
    public init(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    /// Applies one update to every layer.
    public func step(_ network: Chain) {
        let (lr, mu, wd, nesterov) = (learningRate, momentum, weightDecay, nesterov)
        for layer in network.layers {
            let buffers = state.buffers(for: layer, slots: mu == 0 ? 0 : 1)
            forEachParameter(of: layer) { isWeight, w, g, m in
                // Branch-free loops so the compiler vectorises them. With a mask, the update is
                // multiplied by it, so at a pruned position `w = +0 − η·(±0) = +0` exactly.
                let n = w.count
                guard let w = w.baseAddress, let g = g.baseAddress else { return }
                if mu == 0 {
                    if let m = m?.baseAddress {
                        for i in 0..<n { w[i] -= lr * ((g[i] + wd * w[i]) * m[i]) }
                    } else {
                        for i in 0..<n { w[i] -= lr * (g[i] + wd * w[i]) }
                    }
                    return
                }
                let v = buffers[isWeight ? 0 : 1]
                switch (m?.baseAddress, nesterov) {
                case (let m?, false):
                    for i in 0..<n {
                        let vi = (mu * v[i] + g[i] + wd * w[i]) * m[i]
                        v[i] = vi
                        w[i] -= lr * vi
                    }
                case (let m?, true):
                    for i in 0..<n {
                        let gi = (g[i] + wd * w[i]) * m[i]
                        let vi = (mu * v[i] + gi) * m[i]
                        v[i] = vi
                        w[i] -= lr * (gi + mu * vi)
                    }
                case (nil, false):
                    for i in 0..<n {
                        let vi = mu * v[i] + g[i] + wd * w[i]
                        v[i] = vi
                        w[i] -= lr * vi
                    }
                case (nil, true):
                    for i in 0..<n {
                        let gi = g[i] + wd * w[i]
                        let vi = mu * v[i] + gi
                        v[i] = vi
                        w[i] -= lr * (gi + mu * vi)
                    }
                }
            }
        }
    }

    /// Forgets the velocities.
    public func reset() { state.removeAll() }
}

/// Adam (Kingma & Ba 2015) and, with `decoupledWeightDecay`, AdamW (Loshchilov & Hutter 2019):
///
/// ```text
/// m ← β₁m + (1−β₁)g;   v ← β₂v + (1−β₂)g²;   w ← w − η·m̂/(√v̂ + ε)
/// ```
/// where `g = ∇ + λw` for Adam, and `w ← w − ηλw` is applied separately for AdamW.
public final class Adam: Optimizer {
    /// The step size `η`.
    public var learningRate: Float
    /// The first-moment decay `β₁`.
    public var beta1: Float
    /// The second-moment decay `β₂`.
    public var beta2: Float
    /// The denominator guard `ε`.
    public var epsilon: Float
    /// The weight decay `λ`.
    public var weightDecay: Float
    /// Whether weight decay is decoupled from the gradient (AdamW) or added to it (Adam's L2).
    public var decoupledWeightDecay: Bool
    private var state = OptimizerState()
    private var steps = 0

    /// Creates the optimizer (PyTorch's defaults).
    public init(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// AdamW with PyTorch's defaults (`λ = 0.01`).
    public static func adamW(learningRate: Float = 0.001, weightDecay: Float = 0.01) -> Adam {
        Adam(learningRate: learningRate, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    /// Applies one update to every layer.
    public func step(_ network: Chain) {
        steps += 1
        let (lr, b1, b2, eps, wd) = (learningRate, beta1, beta2, epsilon, weightDecay)
        let decoupled = decoupledWeightDecay
        let c1 = 1 - _powf(b1, Float(steps))
        let c2 = 1 - _powf(b2, Float(steps))
        let stepSize = lr / c1
        let c2Root = c2.squareRoot()
        for layer in network.layers {
            let buffers = state.buffers(for: layer, slots: 2)
            forEachParameter(of: layer) { isWeight, w, g, mask in
                let slot = isWeight ? 0 : 1
                let m = buffers[slot], v = buffers[slot + 2]
                for i in 0..<w.count {
                    var gi = g[i]
                    if decoupled { w[i] -= lr * wd * w[i] } else { gi += wd * w[i] }
                    var mi = b1 * m[i] + (1 - b1) * gi
                    var vi = b2 * v[i] + (1 - b2) * gi * gi
                    if let mask { mi *= mask[i]; vi *= mask[i] }
                    m[i] = mi
                    v[i] = vi
                    w[i] -= stepSize * mi / (vi.squareRoot() / c2Root + eps)   // +0 − (±0) = +0 where pruned
                }
            }
        }
    }

    /// Forgets the moments and the step count.
    public func reset() {
        state.removeAll()
        steps = 0
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _powf(_ x: Float, _ y: Float) -> Float { Glibc.powf(x, y) }

#elseif canImport(Darwin)
import Darwin
@usableFromInline func _powf(_ x: Float, _ y: Float) -> Float { Darwin.powf(x, y) }

#endif
