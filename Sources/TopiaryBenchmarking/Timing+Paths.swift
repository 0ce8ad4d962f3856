#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@_spi(Kernels) @_spi(Benchmarking) import Topiary

extension Timing {
    /// Times each of `paths` (one call each), returning every timed call's seconds per path.
    ///
    /// With one thread the paths are interleaved call by call, so a burst of load from another
    /// process hits them alike. With more, each path runs in its own blocks (three rounds of one
    /// block per path), and every block starts after a pause of `pause` seconds: OpenBLAS's idle
    /// workers keep spinning for about 0.13 s after a threaded call (2²⁸ cycles), and measured
    /// call by call after a threaded `sgemm` the CSR path shared its second core with that
    /// spinner, taking up to 2.6× longer (LeNet-300-100 at 90%, batch 128, 2 threads:
    /// 291,217 samples/s interleaved, 757,679 in another run); in blocks, each path runs the way an
    /// application that uses only that path runs it. Each block warms up for at least 20 ms
    /// first: right after a pause the CSR pool's worker took a few milliseconds to run again, and
    /// with only two warm-up calls the short products of a block ran on the caller alone
    /// (300×784 at 90%, B = 128: 0.28 ms, the one-thread time).
    static func timePaths(_ paths: [() -> Void], threads: Int, runs: Int, warmup: Int, budget: Double,
                          pause: Double = 0.15) -> [[Double]] {
        var times = [[Double]](repeating: [], count: paths.count)
        func timed(_ i: Int) {
            let t0 = Timing.now()
            paths[i]()
            times[i].append(Timing.now() - t0)
        }
        if threads <= 1 {
            for _ in 0..<warmup { for p in paths { p() } }
            var spent = 0.0
            while times[0].count < 3 || (times[0].count < max(3, runs) && spent < budget) {
                for i in paths.indices {
                    timed(i)
                    spent += times[i][times[i].count - 1]
                }
            }
            return times
        }
        let rounds = 3, perBlock = max(1, (runs + rounds - 1) / rounds)
        let blockBudget = budget / Double(rounds * paths.count)
        for _ in 0..<rounds {
            for i in paths.indices {
                var rest = timespec(tv_sec: Int(pause), tv_nsec: Int((pause - pause.rounded(.down)) * 1e9))
                nanosleep(&rest, nil)
                // Warm-up: the calls, and at least 20 ms of them, so that threads woken from sleep
                // have been scheduled onto their cores before the timing starts.
                let warm = Timing.now()
                var calls = 0
                while calls < warmup || Timing.now() - warm < 0.02 {
                    paths[i]()
                    calls += 1
                }
                let start = Timing.now(), before = times[i].count
                while times[i].count - before < perBlock || (Timing.now() - start < blockBudget && times[i].count - before < 4 * perBlock) {
                    timed(i)
                }
            }
        }
        return times
    }
}
