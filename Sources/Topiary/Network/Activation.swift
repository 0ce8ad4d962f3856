/// The element-wise non-linearity a dense layer applies after its affine map.
public enum Activation: String, Sendable, CaseIterable, Codable {
    /// `f(z) = z`.
    case identity
    /// `f(z) = max(0, z)`.
    case relu
    /// `f(z) = tanh(z)`.
    case tanh
    /// `f(z) = 1 / (1 + e^{-z})`.
    case sigmoid

    /// Applies the activation to one value.
    @inlinable
    func callAsFunction(_ z: Float) -> Float {
        switch self {
        case .identity: return z
        case .relu: return z > 0 ? z : 0
        case .tanh: return _tanhf(z)
        case .sigmoid: return 1 / (1 + _expf(-z))
        }
    }

    /// `y = f(z + bias)` in place over a `[batch, width]` row-major buffer: the fused pass after `sgemm`.
    @inlinable
    func addBiasAndApply(_ z: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                                batch: Int, width: Int) {
        for r in 0..<batch {
            let row = z + r * width
            switch self {
            case .identity:
                for j in 0..<width { row[j] += bias[j] }
            case .relu:
                for j in 0..<width { let v = row[j] + bias[j]; row[j] = v > 0 ? v : 0 }
            case .tanh:
                for j in 0..<width { row[j] = _tanhf(row[j] + bias[j]) }
            case .sigmoid:
                for j in 0..<width { row[j] = 1 / (1 + _expf(-(row[j] + bias[j]))) }
            }
        }
    }

    /// Turns `∂L/∂y` into `∂L/∂z` in place over a `[batch, width]` row-major buffer, using the
    /// outputs `y = f(z)`, and writes the bias gradient `biasGradient[j] = Σ_r ∂L/∂z[r, j]` (rows
    /// added in order) in the same pass. `f'(z)` is written in terms of `y` (ReLU: `y > 0`, tanh:
    /// `1 − y²`, sigmoid: `y(1 − y)`).
    ///
    /// ReLU clears the gradient's bits where `y ≤ 0` instead of selecting: a select compiled to a
    /// branch that mispredicted on about half the units (7% of a 1-thread LeNet-300-100 epoch on
    /// Zen 4, `perf`), and the bit mask vectorises. Both give `+0` there, so the bits are the same.
    @inlinable
    func backward(output y: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>,
                  batch: Int, width: Int, biasGradient gb: UnsafeMutablePointer<Float>) {
        gb.update(repeating: 0, count: width)
        for r in 0..<batch {
            let (yr, gr) = (y + r * width, g + r * width)
            switch self {
            case .identity:
                break
            case .relu:
                for j in 0..<width {
                    let keep: UInt32 = 0 &- (yr[j] > 0 ? 1 : 0)   // all ones where y > 0
                    gr[j] = Float(bitPattern: gr[j].bitPattern & keep)
                }
            case .tanh:
                for j in 0..<width { gr[j] *= 1 - yr[j] * yr[j] }
            case .sigmoid:
                for j in 0..<width { gr[j] *= yr[j] * (1 - yr[j]) }
            }
            for j in 0..<width { gb[j] += gr[j] }
        }
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _tanhf(_ x: Float) -> Float { Glibc.tanhf(x) }
@usableFromInline func _expf(_ x: Float) -> Float { Glibc.expf(x) }
@usableFromInline func _logf(_ x: Float) -> Float { Glibc.logf(x) }
#elseif canImport(Darwin)
import Darwin
@usableFromInline func _tanhf(_ x: Float) -> Float { Darwin.tanhf(x) }
@usableFromInline func _expf(_ x: Float) -> Float { Darwin.expf(x) }
@usableFromInline func _logf(_ x: Float) -> Float { Darwin.logf(x) }
#endif
