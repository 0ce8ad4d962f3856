/// How much of the network to remove at each step: the article's *scheduling*.
///
/// A schedule turns the starting sparsity into a list of ``Step``s, each an overall target
/// sparsity, non-decreasing; a step marked as a *milestone* gets the extra fine-tuning epochs and
/// its accuracy is reported (the last step always is one).
///
/// ```swift
/// PruningSchedule.oneShot(0.9).steps(from: 0).map(\.target)                  // [0.9]
/// PruningSchedule.geometric(fraction: 0.2, milestones: [0.5]).steps(from: 0).map(\.target)
///                                                                              // [0.2, 0.36, 0.488, 0.5]
/// PruningSchedule.polynomial(final: 0.9, steps: 3).steps(from: 0).map(\.target)
///                                                                              // [0.5667, 0.8667, 0.9]
/// ```
public struct PruningSchedule {
    /// One step of a schedule.
    public struct Step: Equatable, Sendable, Codable {
        /// The overall sparsity to prune to.
        public var target: Double
        /// Whether the step is a milestone (extra fine-tuning, reported).
        public var isMilestone: Bool

        /// Creates a step.
        public init(target: Double, isMilestone: Bool = false) {
            self.target = target
            self.isMilestone = isMilestone
        }
    }

    /// A short description for logs and JSON.
    public let name: String
    private let make: (Double) throws -> [Double]
    private let milestoneTargets: [Double]

    /// A schedule from a function of the starting sparsity to the list of targets; `milestones`
    /// marks the steps whose target equals one of them (the last step is always a milestone).
    public init(name: String = "custom", milestones: [Double] = [], _ targets: @escaping (Double) throws -> [Double]) {
        self.name = name
        self.make = targets
        self.milestoneTargets = milestones
    }

    /// The most steps a schedule may have (like `topiary prune --steps`): more is a mistake, and
    /// would allocate gigabytes before the first step.
    public static let maximumStepCount = 100_000

    /// The steps, starting from a network at sparsity `initial`.
    ///
    /// - Throws: `invalidOption` for an empty schedule, more than ``maximumStepCount`` steps,
    ///   targets outside `[0, 1]` or decreasing targets.
    public func steps(from initial: Double = 0) throws -> [Step] {
        let targets = try make(initial)
        guard !targets.isEmpty else { throw TopiaryError(.invalidOption, "schedule \(name) has no steps") }
        guard targets.count <= Self.maximumStepCount else {
            throw TopiaryError(.invalidOption, "schedule \(name) has \(targets.count) steps; at most \(Self.maximumStepCount) are allowed")
        }
        for (i, t) in targets.enumerated() {
            guard t.isFinite, (0...1).contains(t) else {
                throw TopiaryError(.invalidOption, "schedule \(name): target \(t) is outside [0, 1]")
            }
            if i > 0, t < targets[i - 1] {
                throw TopiaryError(.invalidOption, "schedule \(name): targets must not decrease (\(targets[i - 1]) then \(t)); masks only shrink")
            }
        }
        return targets.enumerated().map { i, t in
            Step(target: t, isMilestone: i == targets.count - 1 || milestoneTargets.contains { abs($0 - t) < 1e-12 })
        }
    }

    /// The final target.
    ///
    /// - Throws: as ``steps(from:)`` (`invalidOption` for an empty schedule).
    public func finalTarget(from initial: Double = 0) throws -> Double {
        guard let last = try steps(from: initial).last else { throw TopiaryError(.invalidOption, "schedule \(name) has no steps") }
        return last.target
    }

    /// One-shot pruning: the whole target in a single step.
    public static func oneShot(_ target: Double) -> PruningSchedule {
        PruningSchedule(name: "oneshot(\(target))") { _ in [target] }
    }

    /// A constant fraction of the remaining weights per step: `s_{k+1} = 1 − (1 − s_k)(1 − fraction)`,
    /// each step clipped so that it lands exactly on the next milestone (the last being the final
    /// target), and continuing from there.
    ///
    /// With `fraction: 0.2` and milestones `[0.9, 0.95, 0.98]` this is 20 steps: 0.2, 0.36, …, 0.8926,
    /// 0.9, 0.92, 0.936, 0.9488, 0.95, 0.96, 0.968, 0.9744, 0.97952, 0.98.
    ///
    /// A schedule of more than ``maximumStepCount`` steps (a tiny `fraction`) throws
    /// `invalidOption` as soon as the count is exceeded, before the whole list is built.
    public static func geometric(fraction: Double = 0.2, milestones: [Double]) -> PruningSchedule {
        let sorted = milestones.sorted()
        return PruningSchedule(name: "geometric(\(fraction), " + sorted.map { "\($0)" }.joined(separator: ",") + ")",
                               milestones: sorted) { initial in
            guard fraction.isFinite, fraction > 0, fraction <= 1 else {
                throw TopiaryError(.invalidOption, "geometric schedule: the fraction per step must be in (0, 1], got \(fraction)")
            }
            guard !sorted.isEmpty else { throw TopiaryError(.invalidOption, "geometric schedule: no target given") }
            var targets: [Double] = []
            var s = initial
            for milestone in sorted where milestone > s {
                while s < milestone {
                    let next = 1 - (1 - s) * (1 - fraction)
                    // Within a relative 1e-9 of the milestone counts as reaching it.
                    s = next >= milestone - 1e-9 ? milestone : next
                    targets.append(s)
                    guard targets.count <= maximumStepCount else {
                        throw TopiaryError(.invalidOption, "geometric schedule: removing \(fraction) of the remaining weights per step takes more than \(maximumStepCount) steps to reach \(milestone)")
                    }
                }
            }
            return targets.isEmpty ? [sorted.last!] : targets
        }
    }

    /// A constant fraction of the remaining weights per step up to `target` (see ``geometric(fraction:milestones:)``).
    public static func geometric(fraction: Double = 0.2, target: Double) -> PruningSchedule {
        geometric(fraction: fraction, milestones: [target])
    }

    /// Polynomial decay of the remaining density over `steps` steps (Zhu & Gupta 2017, AGP):
    /// `s_t = s_f + (s_i − s_f)(1 − t/n)^e` for `t = 1…n`, where `s_i` is `initial` (default: the
    /// network's starting sparsity) and `e` the exponent (3 in the paper).
    public static func polynomial(initial: Double? = nil, final: Double, steps: Int, exponent: Double = 3) -> PruningSchedule {
        PruningSchedule(name: "agp(\(final), \(steps) steps, ^\(exponent))") { start in
            guard steps > 0, steps <= maximumStepCount else {
                throw TopiaryError(.invalidOption, "polynomial schedule: steps must be between 1 and \(maximumStepCount), got \(steps)")
            }
            guard exponent.isFinite, exponent > 0 else {
                throw TopiaryError(.invalidOption, "polynomial schedule: the exponent must be positive, got \(exponent)")
            }
            let si = max(initial ?? start, start)
            return (1...steps).map { t in
                PolynomialDecay(initial: si, final: final, exponent: exponent)(Double(t) / Double(steps))
            }
        }
    }

    /// An explicit list of targets.
    public static func list(_ targets: [Double], milestones: [Double] = []) -> PruningSchedule {
        PruningSchedule(name: "list(" + targets.map { "\($0)" }.joined(separator: ",") + ")", milestones: milestones) { _ in targets }
    }
}

/// Zhu & Gupta's (2017) cubic sparsity ramp as a function of progress `p ∈ [0, 1]`:
/// `s(p) = s_f + (s_i − s_f)(1 − p)^e` (clamped to `p ∈ [0, 1]`).
///
/// ```swift
/// let ramp = PolynomialDecay(initial: 0, final: 0.9)
/// ramp(0.5)   // 0.9 − 0.9 · 0.125 = 0.7875
/// ```
public struct PolynomialDecay: Sendable, Equatable, Codable {
    /// The sparsity at `p = 0`.
    public var initial: Double
    /// The sparsity at `p = 1`.
    public var final: Double
    /// The exponent (3 in the paper).
    public var exponent: Double

    /// Creates the ramp.
    public init(initial: Double, final: Double, exponent: Double = 3) {
        self.initial = initial
        self.final = final
        self.exponent = exponent
    }

    /// The sparsity at progress `p`.
    public func callAsFunction(_ p: Double) -> Double {
        let q = min(max(p, 0), 1)
        return final + (initial - final) * _pow(1 - q, exponent)
    }
}

/// Gradual pruning inside training (Zhu & Gupta 2017): starting at training iteration `t0`, the
/// network is pruned every `interval` (Δt) iterations, `count` (n) times, to
/// `s_t = s_f + (s_i − s_f)(1 − (t − t0)/(n·Δt))^e`.
///
/// Use with ``Trainer/trainEpoch(_:progress:afterStep:)``: after optimizer step `t` (from 0),
/// ``target(afterIteration:)`` says whether to prune and to what.
///
/// ```swift
/// let agp = GradualPruning(decay: PolynomialDecay(initial: 0, final: 0.98), start: 0, interval: 100, count: 40)
/// try trainer.trainEpoch(data.train) { t in
///     if let s = agp.target(afterIteration: t) { try pruner.prune(network, to: s) }
/// }
/// ```
public struct GradualPruning: Sendable, Equatable, Codable {
    /// The sparsity ramp.
    public var decay: PolynomialDecay
    /// The first iteration `t0` at which pruning happens.
    public var start: Int
    /// Iterations between pruning events, Δt.
    public var interval: Int
    /// The number of pruning events, n.
    public var count: Int

    /// Creates the schedule.
    public init(decay: PolynomialDecay, start: Int = 0, interval: Int, count: Int) {
        self.decay = decay
        self.start = start
        self.interval = interval
        self.count = count
    }

    /// The iteration of the last pruning event: events fall after iterations `t0 + Δt, t0 + 2Δt, …,
    /// t0 + nΔt`, and the last one lands on `s_f`.
    public var lastIteration: Int { start + count * interval }

    /// The target after iteration `t` if a pruning event falls on it, else `nil`.
    public func target(afterIteration t: Int) -> Double? {
        guard interval > 0, count > 0, t > start, t <= lastIteration, (t - start) % interval == 0 else { return nil }
        return decay(Double(t - start) / Double(count * interval))
    }

    /// The target sparsity at iteration `t` (the ramp, held constant between events).
    public func sparsity(atIteration t: Int) -> Double {
        guard interval > 0, count > 0, t > start else { return decay.initial }
        let events = min(count, (t - start) / interval)
        return decay(Double(events) / Double(count))
    }
}
