import XCTest
@testable import Topiary

final class DenseTests: XCTestCase {
    /// L = Σ y ⊙ r for a fixed random r, so ∂L/∂y = r.
    private func projectedLoss(_ layer: Dense, _ x: Matrix, _ r: Matrix) -> Double {
        let y = layer(x)
        return zip(y.storage, r.storage).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    func testGradientsMatchFiniteDifferencesForEveryActivation() {
        for activation in Activation.allCases {
            var rng = SeededRandom(seed: 10)
            let layer = Dense(5, 4, activation: activation, using: &rng)
            let x = randomMatrix(3, 5, rng: &rng)
            let r = randomMatrix(3, 4, rng: &rng)
            // Analytical gradients.
            let y = layer(x)
            var g = r.storage
            var gx = [Float](repeating: 0, count: x.count)
            x.storage.withUnsafeBufferPointer { px in
                y.storage.withUnsafeBufferPointer { py in
                    g.withUnsafeMutableBufferPointer { pg in
                        gx.withUnsafeMutableBufferPointer { pgx in
                            layer.backward(input: px.baseAddress!, output: py.baseAddress!, outputGradient: pg.baseAddress!,
                                           batch: 3, inputGradient: pgx.baseAddress!)
                        }
                    }
                }
            }
            let h: Float = 1e-2
            for i in 0..<layer.weight.count {
                let fd = centralDifference(at: layer.weight.storage[i], h: h) { v in
                    layer.weight.storage[i] = v; return projectedLoss(layer, x, r)
                }
                XCTAssertEqual(Double(layer.weightGradient.storage[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "\(activation) dW[\(i)]")
            }
            for i in 0..<layer.bias.count {
                let fd = centralDifference(at: layer.bias[i], h: h) { v in
                    layer.bias[i] = v; return projectedLoss(layer, x, r)
                }
                XCTAssertEqual(Double(layer.biasGradient[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "\(activation) db[\(i)]")
            }
            for i in 0..<x.count {
                let fd = centralDifference(at: x.storage[i], h: h) { v in
                    var xv = x; xv.storage[i] = v; return projectedLoss(layer, xv, r)
                }
                XCTAssertEqual(Double(gx[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "\(activation) dX[\(i)]")
            }
        }
    }

    func testForwardIsAffineMapThenActivation() {
        var rng = SeededRandom(seed: 11)
        let layer = Dense(7, 13, activation: .relu, using: &rng)
        for batch in [1, 5] {
            let x = randomMatrix(batch, 7, rng: &rng)
            let z = naiveMatmul(x, false, layer.weight, true)
            var expected = z.storage
            for b in 0..<batch { for j in 0..<13 { expected[b * 13 + j] = max(0, expected[b * 13 + j] + layer.bias[j]) } }
            assertClose(layer(x).storage, expected, relative: 1e-5, "batch \(batch)")
        }
    }

    func testDefaultInitialisationIsUniformWithinOneOverSqrtFanIn() {
        var rng = SeededRandom(seed: 12)
        let layer = Dense(400, 50, using: &rng)
        let bound: Float = 1 / 20
        XCTAssert(layer.weight.storage.allSatisfy { abs($0) <= bound })
        XCTAssert(layer.bias.allSatisfy { abs($0) <= bound })
        let mean = layer.weight.storage.reduce(0, +) / Float(layer.weight.count)
        let variance = layer.weight.storage.reduce(0) { $0 + $1 * $1 } / Float(layer.weight.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-3)
        XCTAssertEqual(variance, bound * bound / 3, accuracy: bound * bound / 30)  // U(−a, a) has variance a²/3
    }

    func testPrunableDenseKeepsZerosAndMasksGradient() {
        var rng = SeededRandom(seed: 13)
        let layer = PrunableDense(6, 4, activation: .tanh, using: &rng)
        layer.prune { $0 % 3 == 0 }
        XCTAssertEqual(layer.keptCount, 24 - 8)
        for i in 0..<24 where i % 3 == 0 { XCTAssertEqual(layer.weight.storage[i], 0); XCTAssertEqual(layer.mask.storage[i], 0) }
        let x = randomMatrix(2, 6, rng: &rng)
        let y = layer(x)
        var g = [Float](repeating: 1, count: y.count)
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeBufferPointer { py in
                g.withUnsafeMutableBufferPointer { pg in
                    layer.backward(input: px.baseAddress!, output: py.baseAddress!, outputGradient: pg.baseAddress!,
                                   batch: 2, inputGradient: nil)
                }
            }
        }
        for i in 0..<24 where i % 3 == 0 { XCTAssertEqual(layer.weightGradient.storage[i], 0) }
        XCTAssert(layer.weightGradient.storage.contains { $0 != 0 })
        // Masks only shrink.
        layer.prune { _ in false }
        XCTAssertEqual(layer.keptCount, 16)
    }

    func testBiasMaskOnlyShrinksZeroesBiasesAndMasksTheirGradient() {
        var rng = SeededRandom(seed: 14)
        let layer = PrunableDense(3, 5, activation: .relu, using: &rng)
        let original = layer.bias
        XCTAssertEqual(layer.biasMask, [1, 1, 1, 1, 1])
        XCTAssertFalse(layer.hasPrunedBiases)
        layer.pruneBiases { $0 == 1 || $0 == 3 }
        XCTAssertEqual(layer.keptBiasCount, 3)
        XCTAssertEqual(layer.biasMask, [1, 0, 1, 0, 1])
        XCTAssertEqual(layer.bias.map(\.bitPattern), [original[0], 0, original[2], 0, original[4]].map(\.bitPattern))
        XCTAssertEqual(layer.keptCount, 15, "pruning biases leaves the weight mask alone")
        // Masks only shrink: a later call cannot revive bias 1.
        layer.pruneBiases { $0 == 0 }
        XCTAssertEqual(layer.biasMask, [0, 0, 1, 0, 1])
        // Writing a bias directly, then applyMask, restores the invariant.
        layer.bias[1] = 7
        layer.applyMask()
        XCTAssertEqual(layer.bias[1].bitPattern, Float(0).bitPattern)
        // The gradient seen through biasGradient is masked; copies keep the bias mask.
        layer.biasGradient = [1, 2, 3, 4, 5]
        XCTAssertEqual(layer.biasGradient, [0, 0, 3, 0, 5])
        XCTAssertEqual((layer.copy() as? PrunableDense)?.biasMask, [0, 0, 1, 0, 1])
        XCTAssertEqual(PrunableDense(layer).biasMask, [0, 0, 1, 0, 1])
        layer.setBiasMask([0, 0, 0, 0, 1])
        XCTAssertEqual(layer.keptBiasCount, 1)
        XCTAssertEqual(layer.bias[2], 0)
        XCTAssertEqual(layer.weight.nonzeroCount + layer.nonzeroBiasCount, 16)
        XCTAssertEqual(layer.parameterSparsity, 1 - 16.0 / 20.0)
    }
}
