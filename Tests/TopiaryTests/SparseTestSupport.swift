import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// Shared helpers for the sparse and inference tests: exact-sparsity random matrices and a
/// naive double-precision reference for `Y = f(W·X + b)`.
enum SparseTestSupport {
    /// A `rows × columns` matrix with exactly `round(sparsity · count)` zeros at random positions
    /// and the other entries uniform in `[-1, 1)` (never exactly zero).
    static func randomMatrix(_ rows: Int, _ columns: Int, sparsity: Double, rng: inout SeededRandom) -> Matrix {
        var m = Matrix(rows: rows, columns: columns)
        let n = m.count
        let zeros = Int((sparsity * Double(n)).rounded())
        var order = [Int32](0..<Int32(n))
        order.withUnsafeMutableBufferPointer { rng.shuffle($0) }
        for p in zeros..<n {
            var v = rng.nextUniform(-1, 1)
            if v == 0 { v = 0.5 }
            m.storage[Int(order[p])] = v
        }
        return m
    }

    /// The CPUs this process may run on, from the kernel's `Cpus_allowed_list` line of
    /// `/proc/self/status` (e.g. `0-3,8`).
    static func allowedCPUs() throws -> [Int] {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        return try line.dropFirst("Cpus_allowed_list:".count).split(separator: ",").flatMap { range -> [Int] in
            let ends = try range.split(separator: "-").map { try XCTUnwrap(Int($0.trimmingCharacters(in: .whitespaces))) }
            let first = try XCTUnwrap(ends.first), last = try XCTUnwrap(ends.last)
            return Array(first...last)
        }
    }

    /// Uniform values in `[-1, 1)`.
    static func randomArray(_ count: Int, rng: inout SeededRandom) -> [Float] {
        (0..<count).map { _ in rng.nextUniform(-1, 1) }
    }

    /// The naive reference in `Double`: returns `f(W·X + b)` feature-major `[M, B]` and, per entry,
    /// the scale `|b| + Σ|w||x|` that bounds the float rounding error.
    static func reference(weight w: Matrix, bias: [Float], activation: Activation,
                          x: [Float], ldx: Int, batch: Int) -> (values: [Double], scale: [Double]) {
        let (m, k) = (w.rows, w.columns)
        var z = [Double](repeating: 0, count: m * batch)
        var scale = [Double](repeating: 0, count: m * batch)
        w.storage.withUnsafeBufferPointer { pw in
            x.withUnsafeBufferPointer { px in
                z.withUnsafeMutableBufferPointer { pz in
                    scale.withUnsafeMutableBufferPointer { ps in
                        for i in 0..<m {
                            let zr = pz.baseAddress! + i * batch, sr = ps.baseAddress! + i * batch
                            for j in 0..<batch {
                                zr[j] = Double(bias[i])
                                sr[j] = abs(Double(bias[i]))
                            }
                            for c in 0..<k where pw[i * k + c] != 0 {
                                let wv = Double(pw[i * k + c])
                                let xr = px.baseAddress! + c * ldx
                                for j in 0..<batch {
                                    let t = wv * Double(xr[j])
                                    zr[j] += t
                                    sr[j] += abs(t)
                                }
                            }
                        }
                    }
                }
            }
        }
        let f: (Double) -> Double
        switch activation {
        case .identity: f = { $0 }
        case .relu: f = { max(0, $0) }
        case .tanh: f = { Foundation.tanh($0) }
        case .sigmoid: f = { 1 / (1 + Foundation.exp(-$0)) }
        }
        return (z.map(f), scale)
    }

    /// Asserts `|actual − expected| ≤ tolerance · max(scale, |expected|, 1e-30)` entry by entry.
    static func assertClose(_ actual: [Float], _ expected: [Double], scale: [Double], tolerance: Double = 1e-5,
                            _ message: @autoclosure () -> String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, message(), file: file, line: line)
        var worst = 0.0, at = -1
        for i in 0..<min(actual.count, expected.count) {
            let err = abs(Double(actual[i]) - expected[i]) / max(scale[i], abs(expected[i]), 1e-30)
            if !(err <= worst) { worst = err; at = i }
        }
        if at >= 0 && !(worst <= tolerance) {
            XCTFail("\(message()): entry \(at) is \(actual[at]), expected \(expected[at]) (relative error \(worst))",
                    file: file, line: line)
        }
    }
}
