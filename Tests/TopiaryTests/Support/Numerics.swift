import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// A random matrix with entries in `[-scale, scale)`.
func randomMatrix(_ rows: Int, _ columns: Int, scale: Float = 1, rng: inout SeededRandom) -> Matrix {
    Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in rng.nextUniform(-scale, scale) })
}

/// The naive triple loop `op(A) · op(B)`, in Double, the reference for the BLAS wrapper.
func naiveMatmul(_ a: Matrix, _ ta: Bool, _ b: Matrix, _ tb: Bool) -> Matrix {
    let m = ta ? a.columns : a.rows, k = ta ? a.rows : a.columns
    let n = tb ? b.rows : b.columns
    var c = Matrix(rows: m, columns: n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let x = ta ? a[p, i] : a[i, p]
                let y = tb ? b[j, p] : b[p, j]
                s += Double(x) * Double(y)
            }
            c[i, j] = Float(s)
        }
    }
    return c
}

/// Asserts that two float arrays agree within `relative · max(1, |expected|)`.
func assertClose(_ actual: [Float], _ expected: [Float], relative: Float = 1e-5,
                 _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "count " + message, file: file, line: line)
    var worst: Float = 0
    var worstIndex = -1
    for i in 0..<min(actual.count, expected.count) {
        let err = abs(actual[i] - expected[i]) / max(1, abs(expected[i]))
        if !(err <= worst) { worst = err; worstIndex = i }
    }
    XCTAssert(worst <= relative,
              "max relative error \(worst) at \(worstIndex) (\(worstIndex >= 0 ? "\(actual[worstIndex]) vs \(expected[worstIndex])" : "")) \(message)",
              file: file, line: line)
}

/// Central finite difference `(f(x₀ + h) − f(x₀ − h)) / 2h`, where `f(v)` evaluates the function with
/// the perturbed parameter set to `v`; the parameter is evaluated at `x₀` last, so callers that
/// store `v` leave it restored.
func centralDifference(at x0: Float, h: Float = 1e-2, _ f: (Float) -> Double) -> Double {
    let up = f(x0 + h)
    let down = f(x0 - h)
    _ = f(x0)
    return (up - down) / Double(2 * h)
}

/// A small labelled problem: 12 uniform features in `[-1, 1)`, the label is the index of the
/// largest of the first 4. Learnable by a small MLP in a few epochs.
func argmaxProblem(count: Int, seed: UInt64) throws -> LabeledData {
    var rng = SeededRandom(seed: seed)
    let images = randomMatrix(count, 12, rng: &rng)
    let labels = (0..<count).map { i -> Int32 in
        var best = 0
        for j in 1..<4 where images[i, j] > images[i, best] { best = j }
        return Int32(best)
    }
    return try LabeledData(images: images, labels: labels)
}

/// ``argmaxProblem(count:seed:)`` as train / validation / test splits with seeds `seed`, `seed + 1`, `seed + 2`.
func argmaxDataset(train: Int, validation: Int, test: Int, seed: UInt64) throws -> Dataset {
    try Dataset(train: argmaxProblem(count: train, seed: seed), validation: argmaxProblem(count: validation, seed: seed + 1),
            test: argmaxProblem(count: test, seed: seed + 2), normalization: .identity, classCount: 4)
}

extension Dense {
    /// The weight mask, all ones for a dense layer.
    var maskOrOnes: Matrix { mask ?? Matrix(rows: weight.rows, columns: weight.columns, repeating: 1) }
    /// The bias mask, all ones when no bias is pruned.
    var biasMaskOrOnes: [Float] { biasMask ?? [Float](repeating: 1, count: bias.count) }
}
