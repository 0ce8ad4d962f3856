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

    /// Turns `∂L/∂y` into `∂L/∂z` in place and sums the bias gradient, in one pass over the
    /// columns `columns` of a `[batch, width]` row-major gradient, using the outputs `y = f(z)`
    /// (`f'(z)` in terms of `y`: ReLU `y > 0`, tanh `1 − y²`, sigmoid `y(1 − y)`). Each `g[r, j]` becomes `∂L/∂z`, and
    /// `biasGradient[j] = Σ_r ∂L/∂z[r, j]`, summed over `r` in increasing order (so the bits do
    /// not depend on how the columns are split).
    @inlinable
    func backward(output y: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>, batch: Int, width: Int,
                  columns: Range<Int>, biasGradient gb: UnsafeMutablePointer<Float>) {
        for j in columns { gb[j] = 0 }
        for r in 0..<batch {
            let yr = y + r * width, gr = g + r * width
            switch self {
            case .identity: for j in columns { gb[j] += gr[j] }
            case .relu: for j in columns { let d = yr[j] > 0 ? gr[j] : 0; gr[j] = d; gb[j] += d }
            case .tanh: for j in columns { let d = gr[j] * (1 - yr[j] * yr[j]); gr[j] = d; gb[j] += d }
            case .sigmoid: for j in columns { let d = gr[j] * (yr[j] * (1 - yr[j])); gr[j] = d; gb[j] += d }
            }
        }
    }

    /// The cost of one element of the activation (and bias) pass, in multiply-add equivalents.
    var elementCost: Int { self == .tanh || self == .sigmoid ? 16 : 2 }
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
