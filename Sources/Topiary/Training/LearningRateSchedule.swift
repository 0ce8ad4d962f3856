/// How the learning rate changes during training: a multiplier of the base rate as a function
/// of the (fractional) epoch, evaluated before every optimizer step.
///
/// ```swift
/// let schedule = LearningRateSchedule.cosine(epochs: 15)   // from 1× down to 0× over 15 epochs
/// schedule(7.5)                                           // 0.5
/// ```
public struct LearningRateSchedule: Sendable {
    /// A short description (`constant`, `step(5, 0.1)`, `cosine(15)`), for logs and JSON.
    public let name: String
    private let factor: @Sendable (Double) -> Double

    /// A schedule from any multiplier function of the fractional epoch `t` (0 at the start of training).
    public init(name: String = "custom", _ factor: @escaping @Sendable (Double) -> Double) {
        self.name = name
        self.factor = factor
    }

    /// The multiplier of the base learning rate at fractional epoch `t`.
    public func callAsFunction(_ t: Double) -> Double { factor(t) }

    /// The base rate throughout.
    public static let constant = LearningRateSchedule(name: "constant") { _ in 1 }

    /// Multiplies the rate by `gamma` every `every` epochs (PyTorch's `StepLR`).
    public static func step(every: Int, gamma: Double) -> LearningRateSchedule {
        require(every > 0, "LearningRateSchedule.step: every must be positive")
        return LearningRateSchedule(name: "step(\(every), \(gamma))") { t in
            _pow(gamma, Double(Int(t) / every))
        }
    }

    /// Cosine annealing from 1× to `minimum`× over `epochs` epochs, evaluated at every step
    /// (Loshchilov & Hutter 2017, without restarts).
    public static func cosine(epochs: Int, minimum: Double = 0) -> LearningRateSchedule {
        require(epochs > 0, "LearningRateSchedule.cosine: epochs must be positive")
        return LearningRateSchedule(name: "cosine(\(epochs))") { t in
            let p = min(max(t / Double(epochs), 0), 1)
            return minimum + (1 - minimum) * 0.5 * (1 + _cosD(Double.pi * p))
        }
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _pow(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
@usableFromInline func _cosD(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@usableFromInline func _pow(_ x: Double, _ y: Double) -> Double { Darwin.pow(x, y) }
@usableFromInline func _cosD(_ x: Double) -> Double { Darwin.cos(x) }
#endif
