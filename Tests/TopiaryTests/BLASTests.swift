import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class BLASTests: XCTestCase {
    func testMatmulMatchesNaiveLoopOnOddShapesAndTransposes() {
        var rng = SeededRandom(seed: 1)
        for (m, k, n) in [(1, 1, 1), (7, 13, 5), (3, 1, 9), (17, 33, 2)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = ta ? randomMatrix(k, m, rng: &rng) : randomMatrix(m, k, rng: &rng)
                    let b = tb ? randomMatrix(n, k, rng: &rng) : randomMatrix(k, n, rng: &rng)
                    let c = BLAS.matmul(a, ta ? .transpose : .none, b, tb ? .transpose : .none)
                    XCTAssertEqual(c.rows, m); XCTAssertEqual(c.columns, n)
                    assertClose(c.storage, naiveMatmul(a, ta, b, tb).storage, relative: 1e-5, "\(m)x\(k)x\(n) \(ta) \(tb)")
                }
            }
        }
    }

    func testGemmAccumulatesWithAlphaAndBeta() {
        var rng = SeededRandom(seed: 2)
        let a = randomMatrix(4, 3, rng: &rng), b = randomMatrix(3, 5, rng: &rng)
        var c = randomMatrix(4, 5, rng: &rng)
        let c0 = c
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                c.storage.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(.none, .none, m: 4, n: 5, k: 3, alpha: 2, a: pa.baseAddress!, lda: 3,
                              b: pb.baseAddress!, ldb: 5, beta: 0.5, c: pc.baseAddress!, ldc: 5)
                }
            }
        }
        let ab = naiveMatmul(a, false, b, false)
        assertClose(c.storage, zip(ab.storage, c0.storage).map { 2 * $0 + 0.5 * $1 }, relative: 1e-5)
    }

    func testGemvMatchesNaiveLoopBothWays() {
        var rng = SeededRandom(seed: 3)
        let a = randomMatrix(7, 13, rng: &rng)
        for trans in [false, true] {
            let x = randomMatrix(trans ? 7 : 13, 1, rng: &rng)
            var y = [Float](repeating: 0, count: trans ? 13 : 7)
            a.storage.withUnsafeBufferPointer { pa in
                x.storage.withUnsafeBufferPointer { px in
                    y.withUnsafeMutableBufferPointer { py in
                        BLAS.gemv(trans ? .transpose : .none, rows: 7, columns: 13, a: pa.baseAddress!, lda: 13,
                                  x: px.baseAddress!, y: py.baseAddress!)
                    }
                }
            }
            assertClose(y, naiveMatmul(a, trans, x, false).storage, relative: 1e-5)
        }
    }

    func testThreadCountCanBeSet() {
        let saved = BLAS.threadCount
        BLAS.threadCount = 1
        XCTAssertEqual(BLAS.threadCount, 1)
        BLAS.threadCount = saved
    }
}
