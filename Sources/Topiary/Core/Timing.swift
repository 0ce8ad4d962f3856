#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one clock and the one median of the library and its benchmarks.
///
/// Not API: the automatic inference policy times kernels with it, and the benchmarking target
/// (`@_spi(Benchmarking) import Topiary`) reports with it.
@_spi(Benchmarking) public enum Timing {
    /// Seconds on the monotonic clock from an arbitrary origin; only differences mean anything.
    ///
    /// `CLOCK_MONOTONIC` in one call: the automatic policy times products of a few microseconds.
    public static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Seconds `body` took.
    public static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = now()
        try body()
        return now() - start
    }

    /// The middle value once sorted: the upper of the two middle values for an even count, so
    /// always a measured time; NaN for no values.
    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }
}

extension Duration {
    /// The duration in seconds.
    @_spi(Benchmarking) public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
