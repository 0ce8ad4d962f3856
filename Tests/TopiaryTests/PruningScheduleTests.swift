import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class PruningScheduleTests: XCTestCase {
    func testOneShotIsOneMilestoneStep() throws {
        XCTAssertEqual(try PruningSchedule.oneShot(0.9).steps(), [.init(target: 0.9, isMilestone: true)])
    }

    func testGeometricRemovesAFractionOfTheRemainingAndClipsAtMilestones() throws {
        let steps = try PruningSchedule.geometric(fraction: 0.2, milestones: [0.9, 0.95, 0.98]).steps()
        XCTAssertEqual(steps.count, 20)
        let expected: [Double] = [0.2, 0.36, 0.488, 0.5904, 0.67232, 0.737856, 0.7902848, 0.83222784, 0.865782272,
                                  0.8926258176, 0.9, 0.92, 0.936, 0.9488, 0.95, 0.96, 0.968, 0.9744, 0.97952, 0.98]
        for (s, e) in zip(steps, expected) { XCTAssertEqual(s.target, e, accuracy: 1e-12) }
        XCTAssertEqual(steps.filter(\.isMilestone).map(\.target), [0.9, 0.95, 0.98])
        XCTAssertEqual(try PruningSchedule.geometric(fraction: 0.5, target: 0.7).steps(from: 0.4).map(\.target), [0.7])
    }

    func testGradualStepsMatchZhuAndGupta() throws {
        // s_t = s_f + (s_i − s_f)(1 − t/n)³ with s_i = 0, s_f = 0.9, n = 4.
        let steps = try PruningSchedule.gradual(GradualSchedule(final: 0.9, steps: 4)).steps().map(\.target)
        let expected = [1, 2, 3, 4].map { t in 0.9 - 0.9 * pow(1 - Double(t) / 4, 3) }
        XCTAssertEqual(steps.count, 4)
        for (s, e) in zip(steps, expected) { XCTAssertEqual(s, e, accuracy: 1e-12) }
        XCTAssertEqual(steps[0], 0.5203125, accuracy: 1e-12)
        XCTAssertEqual(steps[3], 0.9)
        // A configurable exponent and initial sparsity.
        let linear = try PruningSchedule.gradual(GradualSchedule(initial: 0.5, final: 0.9, exponent: 1, steps: 2)).steps().map(\.target)
        XCTAssertEqual(linear, [0.7, 0.9])
        XCTAssertEqual(GradualSchedule(final: 0.9, steps: 1).sparsity(atProgress: 0.5), 0.7875, accuracy: 1e-12)
        // The ramp starts from the network's sparsity when that is higher than its initial value.
        XCTAssertEqual(try PruningSchedule.gradual(GradualSchedule(final: 0.9, exponent: 1, steps: 2)).steps(from: 0.5).map(\.target), [0.7, 0.9])
    }

    func testGradualScheduleEventsInsideTraining() {
        let agp = GradualSchedule(initial: 0.1, final: 0.9, steps: 4, start: 10, interval: 5)
        XCTAssertNil(agp.target(afterIteration: 10))
        XCTAssertNil(agp.target(afterIteration: 12))
        XCTAssertEqual(agp.target(afterIteration: 15)!, 0.9 - 0.8 * pow(0.75, 3), accuracy: 1e-12)
        XCTAssertEqual(agp.target(afterIteration: 30)!, 0.9, accuracy: 1e-12)
        XCTAssertNil(agp.target(afterIteration: 35))
        XCTAssertEqual(agp.sparsity(atIteration: 5), 0.1)
        XCTAssertEqual(agp.sparsity(atIteration: 27), agp.target(afterIteration: 25)!)
        XCTAssertEqual(agp.sparsity(atIteration: 1000), 0.9, accuracy: 1e-12)
    }

    /// Pruning every Δt batches over E epochs of B batches: n = ⌊E·B/Δt⌋ pruning steps, the last
    /// one inside the last epoch and on the final target; at least one however large Δt is.
    func testGradualScheduleSpreadsPruningOverTheEpochs() throws {
        let agp = GradualSchedule(final: 0.98, pruneEvery: 50, epochs: 20, batchesPerEpoch: 430)
        XCTAssertEqual(agp.steps, 172)
        XCTAssertEqual(agp.interval, 50)
        XCTAssertEqual(agp.start, 0)
        XCTAssertEqual(agp.lastIteration, 8600)
        XCTAssertLessThanOrEqual(agp.lastIteration, 20 * 430)
        XCTAssertEqual(agp.target(afterIteration: 8600), 0.98)
        XCTAssertNil(agp.target(afterIteration: 8650))
        XCTAssertEqual(agp.exponent, 3)
        // 3 epochs of 13 batches every 4: ⌊39/4⌋ = 9 steps, the last after iteration 36.
        let small = GradualSchedule(final: 0.9, exponent: 2, pruneEvery: 4, epochs: 3, batchesPerEpoch: 13)
        XCTAssertEqual(small, GradualSchedule(final: 0.9, exponent: 2, steps: 9, start: 0, interval: 4))
        XCTAssertEqual(GradualSchedule(final: 0.9, pruneEvery: 1000, epochs: 1, batchesPerEpoch: 16).steps, 1)
        XCTAssertNoThrow(try small.validate())
        assertThrowsTopiaryError(.invalidOption, try GradualSchedule(final: 1.5, steps: 3).validate())
        assertThrowsTopiaryError(.invalidOption, try GradualSchedule(final: 0.5, steps: 3, interval: 0).validate())
    }

    func testListAndBadSchedules() throws {
        XCTAssertEqual(try PruningSchedule.list([0.5, 0.8, 0.9], milestones: [0.8]).steps().filter(\.isMilestone).map(\.target), [0.8, 0.9])
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.list([0.5, 0.3]).steps())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.list([1.5]).steps())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.geometric(fraction: 0, target: 0.9).steps())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.gradual(GradualSchedule(final: 0.9, steps: 0)).steps())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.gradual(GradualSchedule(final: 0.9, exponent: 0, steps: 3)).steps())
        let custom = PruningSchedule(name: "halves") { start in [start + (1 - start) / 2] }
        XCTAssertEqual(try custom.steps(from: 0.5).map(\.target), [0.75])
    }

    func testTinyFractionsAndHugeStepCountsThrowInsteadOfAllocating() throws {
        // 1e-9 of the remaining weights per step would take ~2.3e9 steps to 0.9.
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.geometric(fraction: 1e-9, target: 0.9).steps())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.geometric(fraction: 1e-9, target: 0.9).finalTarget())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.gradual(GradualSchedule(final: 0.9, steps: PruningSchedule.maximumStepCount + 1)).steps())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.list(Array(repeating: 0.5, count: PruningSchedule.maximumStepCount + 1)).steps())
        // The CLI's smallest step fraction still fits.
        XCTAssertLessThan(try PruningSchedule.geometric(fraction: 0.001, milestones: [0.9, 0.95, 0.98]).steps().count, 5000)
    }

    func testFinalTargetOfAnEmptyScheduleThrows() throws {
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule.list([]).finalTarget())
        assertThrowsTopiaryError(.invalidOption, try PruningSchedule(name: "empty") { _ in [] }.finalTarget(from: 0.3))
        XCTAssertEqual(try PruningSchedule.list([0.5, 0.8]).finalTarget(), 0.8)
    }
}
