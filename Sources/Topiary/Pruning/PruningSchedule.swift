/// How much of the network to remove at each step: the article's *scheduling*.
///
/// A schedule turns the starting sparsity into a list of ``Step``s, each an overall target
/// sparsity, non-decreasing; a step marked as a *milestone* gets the extra fine-tuning epochs and
/// its accuracy is reported (the last step always is one).
///
/// ```swift
/// try PruningSchedule.oneShot(0.9).steps(from: 0).map(\.target)              // [0.9]
/// try PruningSchedule.geometric(fraction: 0.2, milestones: [0.5]).steps(from: 0).map(\.target)
///                                                                              // [0.2, 0.36, 0.488, 0.5]
/// try PruningSchedule.gradual(GradualSchedule(final: 0.9, steps: 3)).steps(from: 0).map(\.target)
///                                                                              // [0.6333, 0.8667, 0.9]
/// ```
public struct PruningSchedule {
    /// One step of a schedule.
    public struct Step: Equatable, Sendable {
        /// The overall sparsity to prune to.
        public var target: Double
        /// Whether the step is a milestone (extra fine-tuning, reported).
        public var isMilestone: Bool

        /// Creates a step.
        init(target: Double, isMilestone: Bool = false) {
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
    static let maximumStepCount = 100_000

    /// The steps, starting from a network at sparsity `initial`.
    ///
    /// - Throws: `invalidOption` for an empty schedule, more than `maximumStepCount` steps,
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
    func finalTarget(from initial: Double = 0) throws -> Double {
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
    /// A schedule of more than `maximumStepCount` steps (a tiny `fraction`) throws
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
    static func geometric(fraction: Double = 0.2, target: Double) -> PruningSchedule {
        geometric(fraction: fraction, milestones: [target])
    }

    /// Gradual pruning as a step schedule (Zhu & Gupta 2017, AGP): `schedule.steps` steps to
    /// `GradualSchedule.sparsity(atProgress:)` at `k/n` for `k = 1…n`, the ramp starting from
    /// `schedule.initial` or the network's starting sparsity, whichever is higher (its start and
    /// interval, which place pruning inside training, are ignored).
    public static func gradual(_ schedule: GradualSchedule) -> PruningSchedule {
        PruningSchedule(name: "agp(\(schedule.initial)→\(schedule.final), \(schedule.steps) steps, ^\(schedule.exponent))") { start in
            var ramp = schedule
            ramp.start = 0
            ramp.interval = 1
            try ramp.validate()
            ramp.initial = max(schedule.initial, start)
            return (1...ramp.steps).map { k in ramp.sparsity(atProgress: Double(k) / Double(ramp.steps)) }
        }
    }

    /// An explicit list of targets.
    public static func list(_ targets: [Double], milestones: [Double] = []) -> PruningSchedule {
        PruningSchedule(name: "list(" + targets.map { "\($0)" }.joined(separator: ",") + ")", milestones: milestones) { _ in targets }
    }
}
