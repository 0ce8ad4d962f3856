import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class LossTests: XCTestCase {
    func testGradientsMatchFiniteDifferences() {
        for loss in Loss.allCases {
            var rng = SeededRandom(seed: 20)
            let z = randomMatrix(4, 5, scale: 3, rng: &rng).storage
            let labels: [Int32] = [0, 4, 2, 2]
            var g = [Float](repeating: 0, count: 20)
            func value(_ z: [Float]) -> Double {
                z.withUnsafeBufferPointer { pz in labels.withUnsafeBufferPointer { pl in
                    loss.evaluate(output: pz.baseAddress!, labels: pl.baseAddress!, batch: 4, classes: 5, gradient: nil).loss
                } }
            }
            z.withUnsafeBufferPointer { pz in labels.withUnsafeBufferPointer { pl in g.withUnsafeMutableBufferPointer { pg in
                _ = loss.evaluate(output: pz.baseAddress!, labels: pl.baseAddress!, batch: 4, classes: 5, gradient: pg.baseAddress!)
            } } }
            for i in 0..<20 {
                let fd = centralDifference(at: z[i]) { v in var zv = z; zv[i] = v; return value(zv) }
                XCTAssertEqual(Double(g[i]), fd, accuracy: 1e-3, "\(loss) ∂L/∂z[\(i)]")
            }
        }
    }

    func testSoftmaxCrossEntropyIsStableForHugeLogits() {
        let z: [Float] = [1000, 0, -1000, 1e30, 1e30, 0]
        let labels: [Int32] = [0, 2]
        var g = [Float](repeating: 0, count: 6)
        let r = z.withUnsafeBufferPointer { pz in labels.withUnsafeBufferPointer { pl in g.withUnsafeMutableBufferPointer { pg in
            Loss.softmaxCrossEntropy.evaluate(output: pz.baseAddress!, labels: pl.baseAddress!, batch: 2, classes: 3, gradient: pg.baseAddress!)
        } } }
        // Row 1: loss ≈ 0. Row 2: label has logit 0 against two 1e30: loss = 1e30 + log 2.
        XCTAssertEqual(r.loss, (0 + (1e30 + log(2.0))) / 2, accuracy: 1e24)
        XCTAssert(g.allSatisfy(\.isFinite))
        XCTAssertEqual(r.correct, 1)
    }

    func testKnownValue() {
        // Uniform logits over 4 classes: loss log 4, gradient (1/4 − onehot).
        let z = [Float](repeating: 0.5, count: 4)
        let labels: [Int32] = [3]
        var g = [Float](repeating: 0, count: 4)
        let r = z.withUnsafeBufferPointer { pz in labels.withUnsafeBufferPointer { pl in g.withUnsafeMutableBufferPointer { pg in
            Loss.softmaxCrossEntropy.evaluate(output: pz.baseAddress!, labels: pl.baseAddress!, batch: 1, classes: 4, gradient: pg.baseAddress!)
        } } }
        XCTAssertEqual(r.loss, log(4.0), accuracy: 1e-6)
        assertClose(g, [0.25, 0.25, 0.25, -0.75], relative: 1e-6)
    }
}
