import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class PruningSelectionTests: XCTestCase {
    func testOrderKeyPreservesFloatOrder() {
        let values: [Float] = [-.infinity, -3, -1e-30, -0.0, 0, 1e-38, 0.5, 1, 2, .greatestFiniteMagnitude, .infinity]
        for (a, b) in zip(values, values.dropFirst()) {
            XCTAssertLessThanOrEqual(PruningSelection.orderKey(a), PruningSelection.orderKey(b), "\(a) vs \(b)")
        }
        XCTAssertEqual(PruningSelection.orderKey(-0.0), PruningSelection.orderKey(0))
        XCTAssertEqual(PruningSelection.orderKey(.nan), 0)
    }

    func testRadixSelectAgreesWithSortingOnAwkwardInputs() {
        var rng = SeededRandom(seed: 1)
        for n in [1, 2, 7, 13, 129, 5000] {
            for pattern in 0..<3 {
                let keys: [UInt64] = (0..<n).map { i in
                    let s: Float = pattern == 0 ? rng.nextUniform() : (pattern == 1 ? 0.25 : Float(rng.nextInt(below: 4)))
                    return PruningSelection.key(saliency: s, position: i)
                }
                for k in Set([0, n / 3, n / 2, n - 1]) {
                    var copy = keys
                    XCTAssertEqual(PruningSelection.kthSmallest(&copy, k: k),
                                   PruningSelection.kthSmallestBySorting(keys, k: k), "n \(n) pattern \(pattern) k \(k)")
                }
            }
        }
    }
}
