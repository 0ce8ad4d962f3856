import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class DenseTests: XCTestCase {
    /// L = Σ y ⊙ r for a fixed random r, so ∂L/∂y = r.
    private func projectedLoss(_ layer: Dense, _ x: Matrix, _ r: Matrix) -> Double {
        let y = layer(x)
        return zip(y.storage, r.storage).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    func testGradientsMatchFiniteDifferencesForEveryActivation() throws {
        for activation in Activation.allCases {
            var rng = SeededRandom(seed: 10)
            let layer = try Dense(5 => 4, activation, using: &rng)
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

    /// The fused backward pass (activation derivative and bias gradient in one sweep, ReLU by bit
    /// mask) against the element-wise definition, bit for bit, with zeros, negative zeros and
    /// gradients of both signs at the ReLU's kink.
    func testActivationBackwardAndBiasGradientMatchTheDefinitionBitForBit() {
        var rng = SeededRandom(seed: 12)
        let (batch, width) = (7, 19)
        var y = (0..<batch * width).map { _ in rng.nextUniform(-1, 1) }
        for i in stride(from: 0, to: y.count, by: 5) { y[i] = i % 2 == 0 ? 0 : -0.0 }
        let g0 = (0..<batch * width).map { _ in rng.nextUniform(-1, 1) }
        for activation in Activation.allCases {
            let y = activation == .relu ? y : y.map { activation.callAsFunction($0) }   // ReLU: y ≤ 0 too
            var expected = g0
            for i in 0..<expected.count {
                switch activation {
                case .identity: break
                case .relu: expected[i] = y[i] > 0 ? g0[i] : 0
                case .tanh: expected[i] = g0[i] * (1 - y[i] * y[i])
                case .sigmoid: expected[i] = g0[i] * (y[i] * (1 - y[i]))
                }
            }
            var expectedBias = [Float](repeating: 0, count: width)
            for r in 0..<batch { for j in 0..<width { expectedBias[j] += expected[r * width + j] } }
            var g = g0
            var gb = [Float](repeating: .nan, count: width)
            y.withUnsafeBufferPointer { py in
                g.withUnsafeMutableBufferPointer { pg in
                    gb.withUnsafeMutableBufferPointer { pb in
                        activation.backward(output: py.baseAddress!, gradient: pg.baseAddress!, batch: batch, width: width,
                                            biasGradient: pb.baseAddress!)
                    }
                }
            }
            XCTAssertEqual(g.map(\.bitPattern), expected.map(\.bitPattern), "\(activation): ∂L/∂z")
            XCTAssertEqual(gb.map(\.bitPattern), expectedBias.map(\.bitPattern), "\(activation): bias gradient")
            if activation == .relu {
                XCTAssertTrue(zip(y, g).allSatisfy { $0 > 0 || $1.bitPattern == 0 }, "ReLU: +0 wherever y ≤ 0")
            }
        }
    }

    func testForwardIsAffineMapThenActivation() throws {
        var rng = SeededRandom(seed: 11)
        let layer = try Dense(7 => 13, .relu, using: &rng)
        for batch in [1, 5] {
            let x = randomMatrix(batch, 7, rng: &rng)
            let z = naiveMatmul(x, false, layer.weight, true)
            var expected = z.storage
            for b in 0..<batch { for j in 0..<13 { expected[b * 13 + j] = max(0, expected[b * 13 + j] + layer.bias[j]) } }
            assertClose(layer(x).storage, expected, relative: 1e-5, "batch \(batch)")
        }
    }

    func testDefaultInitialisationIsUniformWithinOneOverSqrtFanIn() throws {
        var rng = SeededRandom(seed: 12)
        let layer = try Dense(400 => 50, using: &rng)
        let bound: Float = 1 / 20
        XCTAssert(layer.weight.storage.allSatisfy { abs($0) <= bound })
        XCTAssert(layer.bias.allSatisfy { abs($0) <= bound })
        let mean = layer.weight.storage.reduce(0, +) / Float(layer.weight.count)
        let variance = layer.weight.storage.reduce(0) { $0 + $1 * $1 } / Float(layer.weight.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-3)
        XCTAssertEqual(variance, bound * bound / 3, accuracy: bound * bound / 30)  // U(−a, a) has variance a²/3
    }

    func testPruningKeepsZerosAndMasksGradient() throws {
        var rng = SeededRandom(seed: 13)
        let layer = try Dense(6 => 4, .tanh, using: &rng)
        XCTAssertNil(layer.mask, "a new layer is dense")
        XCTAssertFalse(layer.isPruned)
        layer.prune { $0 % 3 == 0 }
        XCTAssertTrue(layer.isPruned)
        XCTAssertEqual(layer.keptCount, 24 - 8)
        for i in 0..<24 where i % 3 == 0 { XCTAssertEqual(layer.weight.storage[i], 0); XCTAssertEqual(layer.mask?.storage[i], 0) }
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
        XCTAssertEqual(layer.sparsity, 1 - 16.0 / 24.0)
    }

    func testPruneIndicesRejectsOutOfRangeAndPrunesExactly() throws {
        var rng = SeededRandom(seed: 15)
        let layer = try Dense(4 => 2, using: &rng)
        XCTAssertThrowsError(try layer.prune(indices: [1, 8])) { XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidShape) }
        XCTAssertNil(layer.mask, "a refused call prunes nothing")
        try layer.prune(indices: [1, 7, 1])
        XCTAssertEqual(layer.keptCount, 6)
        XCTAssertEqual(layer.weight.storage[1], 0)
        XCTAssertEqual(layer.weight.storage[7], 0)
    }

    func testBiasMaskOnlyShrinksZeroesBiasesAndMasksTheirGradient() throws {
        var rng = SeededRandom(seed: 14)
        let layer = try Dense(3 => 5, .relu, using: &rng)
        let original = layer.bias
        XCTAssertNil(layer.biasMask)
        XCTAssertFalse(layer.hasPrunedBiases)
        layer.pruneBiases { $0 == 1 || $0 == 3 }
        XCTAssertEqual(layer.keptBiasCount, 3)
        XCTAssertEqual(layer.biasMask, [1, 0, 1, 0, 1])
        XCTAssertEqual(layer.bias.map(\.bitPattern), [original[0], 0, original[2], 0, original[4]].map(\.bitPattern))
        XCTAssertEqual(layer.keptCount, 15, "pruning biases leaves the weights alone")
        XCTAssertNil(layer.mask)
        // Masks only shrink: a later call cannot revive bias 1.
        layer.pruneBiases { $0 == 0 }
        XCTAssertEqual(layer.biasMask, [0, 0, 1, 0, 1])
        // New parameters go through the mask.
        var bias = layer.bias
        bias[1] = 7
        try layer.setParameters(weight: layer.weight, bias: bias)
        XCTAssertEqual(layer.bias[1].bitPattern, Float(0).bitPattern)
        // The gradient seen through biasGradient is masked; copies keep the bias mask.
        layer.rawBiasGradient = [1, 2, 3, 4, 5]
        XCTAssertEqual(layer.biasGradient, [0, 0, 3, 0, 5])
        XCTAssertEqual(layer.copy().biasMask, [0, 0, 1, 0, 1])
        XCTAssertFalse(layer.copy() === layer)
        try layer.setBiasMask([0, 0, 0, 0, 1])
        XCTAssertEqual(layer.keptBiasCount, 1)
        XCTAssertEqual(layer.bias[2], 0)
        XCTAssertEqual(layer.weight.nonzeroCount + layer.nonzeroBiasCount, 16)
        XCTAssertEqual(layer.parameterSparsity, 1 - 16.0 / 20.0)
    }

    func testSetParametersReappliesTheMaskAndUnmaskRevives() throws {
        let layer = try Dense(weight: Matrix([[1, 2], [3, 4]]), bias: [1, 1], mask: Matrix([[1, 0], [0, 1]]))
        XCTAssertEqual(layer.weight, Matrix([[1, 0], [0, 4]]))
        try layer.setParameters(weight: Matrix([[5, 6], [7, 8]]))
        XCTAssertEqual(layer.weight, Matrix([[5, 0], [0, 8]]), "pruned weights stay zero whatever is written")
        XCTAssertThrowsError(try layer.setParameters(weight: Matrix([[1, 2, 3]])))
        XCTAssertThrowsError(try layer.setMask(Matrix([[1, 0.5], [0, 1]]))) { XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption) }
        layer.unmask()
        XCTAssertNil(layer.mask)
        try layer.setParameters(weight: Matrix([[5, 6], [7, 8]]))
        XCTAssertEqual(layer.weight, Matrix([[5, 6], [7, 8]]))
    }

    func testShapeMistakesThrowWithTheLayerAndTheSizes() throws {
        XCTAssertThrowsError(try Dense(weight: Matrix(rows: 2, columns: 3), bias: [0])) { error in
            XCTAssertEqual((error as? TopiaryError)?.message, "Dense(3 => 2): the bias has 1 entries, expected 2 (one per output)")
        }
        XCTAssertThrowsError(try Dense(0 => 3, seed: 0))
        let layer = try Dense(3 => 2, seed: 0)
        XCTAssertThrowsError(try layer.predict(Matrix(rows: 1, columns: 4))) { error in
            XCTAssertEqual(error.localizedDescription, "Dense(3 => 2): expected input with 3 columns, got 1×4")
        }
        XCTAssertEqual(layer.description, "Dense(3 => 2)")
        XCTAssertEqual(try Dense(3 => 2, .relu, seed: 0).description, "Dense(3 => 2, relu)")
    }

    func testAPruningPredicateThatThrowsChangesNothing() throws {
        struct Stop: Error {}
        let layer = try Dense(4 => 3, seed: 2)
        let before = layer.weight
        XCTAssertThrowsError(try layer.prune { i in if i == 7 { throw Stop() }; return i % 2 == 0 })
        XCTAssertEqual(layer.weight, before)
        XCTAssertNil(layer.mask)
        XCTAssertThrowsError(try layer.pruneBiases { j in if j == 2 { throw Stop() }; return true })
        XCTAssertNil(layer.biasMask)
        XCTAssertFalse(layer.bias.contains(0))
    }
}
