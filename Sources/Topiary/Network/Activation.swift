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

    /// Turns `∂L/∂y` into `∂L/∂z` in place, using the outputs `y = f(z)`:
    /// `f'(z)` is written in terms of `y` (ReLU: `y > 0`, tanh: `1 − y²`, sigmoid: `y(1 − y)`).
    @inlinable
    func backward(output y: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .identity: return
        case .relu: for i in 0..<count { g[i] = y[i] > 0 ? g[i] : 0 }
        case .tanh: for i in 0..<count { g[i] *= 1 - y[i] * y[i] }
        case .sigmoid: for i in 0..<count { g[i] *= y[i] * (1 - y[i]) }
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
