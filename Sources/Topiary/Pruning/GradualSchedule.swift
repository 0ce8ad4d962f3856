/// Gradual pruning, Zhu & Gupta's (2017) automated gradual pruning (AGP): the sparsity ramps from
/// `s_i` to `s_f` over `n` pruning steps as
/// `s_k = s_f + (s_i − s_f)(1 − k/n)^e` for `k = 1…n` (`e = 3` in the paper), fast at first,
/// when many weights are redundant, and slowly near the end.
///
/// The same ramp serves both ways of pruning gradually:
/// - as a step schedule (``PruningSchedule/gradual(_:)``): `n` steps with fine-tuning in between;
/// - inside training (``IterativePruner/Plan/gradual(_:epochs:)``): starting at iteration `t0`
///   (``start``), the network is pruned after every `Δt` (``interval``) optimizer steps, `n` times,
///   the `k`-th time (after iteration `t0 + kΔt`) to `s_k`.
///
/// ```swift
/// let agp = GradualSchedule(final: 0.9, steps: 4)   // halfway, 0.9 − 0.9 · 0.5³ = 0.7875
/// // Every 50 batches over 20 epochs of 430 batches: n = 20 · 430 / 50 = 172 events.
/// let inTraining = GradualSchedule(final: 0.98, pruneEvery: 50, epochs: 20, batchesPerEpoch: 430)
/// ```
public struct GradualSchedule: Sendable, Equatable {
    /// The sparsity at the start of the ramp, `s_i` (as a step schedule, the network's own
    /// sparsity when that is higher).
    public var initial: Double
    /// The sparsity at the end of the ramp, `s_f`.
    public var final: Double
    /// The exponent `e` (3 in the paper).
    public var exponent: Double
    /// The number of pruning steps, `n`.
    public var steps: Int
    /// Inside training: the iteration `t0` after which the ramp starts.
    public var start: Int
    /// Inside training: the optimizer steps between two pruning steps, `Δt`.
    public var interval: Int

    /// Creates a ramp of `steps` pruning steps (inside training, one every `interval` iterations
    /// after iteration `start`).
    public init(initial: Double = 0, final: Double, exponent: Double = 3, steps: Int, start: Int = 0, interval: Int = 1) {
        self.initial = initial
        self.final = final
        self.exponent = exponent
        self.steps = steps
        self.start = start
        self.interval = interval
    }

    /// A ramp inside training that prunes every `pruneEvery` optimizer steps from the start of
    /// `epochs` epochs of `batchesPerEpoch` batches: `n = ⌊epochs · batchesPerEpoch / pruneEvery⌋`
    /// pruning steps (at least one), so the last one falls within the epochs and lands on `final`.
    public init(initial: Double = 0, final: Double, exponent: Double = 3, pruneEvery: Int, epochs: Int, batchesPerEpoch: Int) {
        self.init(initial: initial, final: final, exponent: exponent,
                  steps: max(1, epochs * batchesPerEpoch / max(1, pruneEvery)), start: 0, interval: pruneEvery)
    }

    /// The ramp at progress `p ∈ [0, 1]` (clamped): `s_f + (s_i − s_f)(1 − p)^e`.
    func sparsity(atProgress p: Double) -> Double {
        let q = min(max(p, 0), 1)
        return final + (initial - final) * _pow(1 - q, exponent)
    }

    /// Inside training: the iteration of the last pruning step, `t0 + nΔt`.
    var lastIteration: Int { start + steps * interval }

    /// Inside training: the target after iteration `t` (from 0) if a pruning step falls on it, else `nil`.
    func target(afterIteration t: Int) -> Double? {
        guard interval > 0, steps > 0, t > start, t <= lastIteration, (t - start) % interval == 0 else { return nil }
        return sparsity(atProgress: Double(t - start) / Double(steps * interval))
    }

    /// Inside training: the target at iteration `t` (the ramp, held constant between pruning steps).
    func sparsity(atIteration t: Int) -> Double {
        guard interval > 0, steps > 0, t > start else { return initial }
        let done = min(steps, (t - start) / interval)
        return sparsity(atProgress: Double(done) / Double(steps))
    }

    /// Checks the ramp.
    ///
    /// - Throws: `invalidOption` for sparsities outside `[0, 1]`, a non-positive exponent, or a
    ///   step count (at most `stepLimit`: a step schedule builds the list of its steps, pruning
    ///   inside training does not), start or interval out of range.
    func validate(stepLimit: Int = PruningSchedule.maximumStepCount) throws {
        guard initial.isFinite, final.isFinite, (0...1).contains(initial), (0...1).contains(final) else {
            throw TopiaryError(.invalidOption, "gradual schedule: sparsities must be in [0, 1], got \(initial) → \(final)")
        }
        guard exponent.isFinite, exponent > 0 else {
            throw TopiaryError(.invalidOption, "gradual schedule: the exponent must be positive, got \(exponent)")
        }
        guard (1...stepLimit).contains(steps) else {
            throw TopiaryError(.invalidOption, "gradual schedule: steps must be between 1 and \(stepLimit), got \(steps)")
        }
        guard (0...Int(Int32.max)).contains(start), (1...Int(Int32.max)).contains(interval) else {
            throw TopiaryError(.invalidOption, "gradual schedule: the start must be at least 0 and the interval at least 1, got \(start) and \(interval)")
        }
    }
}
