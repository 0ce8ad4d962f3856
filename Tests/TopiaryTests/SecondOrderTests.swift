import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// LAPACK wrappers and Optimal Brain Surgeon / SparseGPT pruning (issue 15).
final class SecondOrderTests: XCTestCase {
    /// A symmetric positive-definite `n × n` matrix `BᵀB + n·I`.
    private func spd(_ n: Int, seed: UInt64) -> Matrix {
        var rng = SeededRandom(seed: seed)
        let b = randomMatrix(n, n, rng: &rng)
        var a = naiveMatmul(b, true, b, false)
        for i in 0..<n { a[i, i] += Float(n) }
        return a
    }

    /// Inputs with correlated features: `Z·A` for `Z` `[n, d]` and `A` `[d, d]` uniform.
    private func correlatedInputs(_ n: Int, _ d: Int, rng: inout SeededRandom) -> Matrix {
        let z = randomMatrix(n, d, rng: &rng), a = randomMatrix(d, d, rng: &rng)
        return naiveMatmul(z, false, a, false)
    }

    private func assertThrows(_ kind: TopiaryError.Kind, _ body: () throws -> Void, _ message: String = "",
                              file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("expected a \(kind) error \(message)", file: file, line: line)
        } catch let error as TopiaryError {
            XCTAssertEqual(error.kind, kind, error.message, file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    // MARK: LAPACK

    func testGramMatchesNaive() {
        var rng = SeededRandom(seed: 3)
        for (n, d) in [(1, 1), (7, 5), (3, 9), (40, 17)] {
            let x = randomMatrix(n, d, rng: &rng)
            var expected = naiveMatmul(x, true, x, false)
            for i in 0..<expected.count { expected.storage[i] *= 0.5 }
            assertClose(BLAS.gram(x, alpha: 0.5).storage, expected.storage, relative: 1e-5, "\(n)×\(d)")
        }
    }

    func testCholeskyAndInverseMatchNaive() throws {
        for n in [1, 2, 5, 12] {
            let a = spd(n, seed: UInt64(n))
            let u = try BLAS.cholesky(a, upper: true)
            let l = try BLAS.cholesky(a, upper: false)
            for r in 0..<n {
                for c in 0..<r { XCTAssertEqual(u[r, c], 0); XCTAssertEqual(l[c, r], 0) }
            }
            assertClose(naiveMatmul(u, true, u, false).storage, a.storage, relative: 1e-4, "UᵀU, n = \(n)")
            assertClose(naiveMatmul(l, false, l, true).storage, a.storage, relative: 1e-4, "LLᵀ, n = \(n)")
            let inverse = try BLAS.inverseSPD(a)
            var identity = Matrix(rows: n, columns: n)
            for i in 0..<n { identity[i, i] = 1 }
            assertClose(naiveMatmul(a, false, inverse, false).storage, identity.storage, relative: 1e-4, "A·A⁻¹, n = \(n)")
            for r in 0..<n { for c in 0..<n { XCTAssertEqual(inverse[r, c], inverse[c, r]) } }
        }
    }

    func testSingularOrNonFiniteMatricesGiveClearErrors() {
        // Rank one: x·xᵀ.
        let x: [Float] = [1, 2, 3]
        let singular = Matrix(rows: 3, columns: 3, storage: (0..<9).map { x[$0 / 3] * x[$0 % 3] })
        assertThrows(.invalidOption, { _ = try BLAS.inverseSPD(singular) })
        assertThrows(.invalidOption, { _ = try BLAS.cholesky(singular) })
        let indefinite = Matrix(rows: 2, columns: 2, storage: [1, 0, 0, -1])
        assertThrows(.invalidOption, { _ = try BLAS.cholesky(indefinite) })
        assertThrows(.nonFinite, { _ = try BLAS.inverseSPD(Matrix(rows: 1, columns: 1, storage: [.nan])) })
        assertThrows(.invalidShape, { _ = try BLAS.cholesky(Matrix(rows: 2, columns: 3)) })
        do {
            _ = try BLAS.inverseSPD(singular)
        } catch let error as TopiaryError {
            XCTAssert(error.message.contains("singular"), error.message)
        } catch { XCTFail("\(error)") }
    }

    // MARK: OBS on one layer

    func testHessianIsDampenedGram() throws {
        var rng = SeededRandom(seed: 4)
        let x = randomMatrix(30, 6, rng: &rng)
        let h = try SecondOrder.hessian(x, damping: 0.1)
        var g = naiveMatmul(x, true, x, false)
        for i in 0..<g.count { g.storage[i] *= 2 / 30 }
        let mean = (0..<6).reduce(Float(0)) { $0 + g[$1, $1] } / 6
        for i in 0..<6 { g[i, i] += 0.1 * mean }
        assertClose(h.storage, g.storage, relative: 1e-5)
        assertThrows(.invalidOption, { _ = try SecondOrder.hessian(x, damping: -1) })
        assertThrows(.invalidOption, { _ = try SecondOrder.hessian(Matrix(rows: 0, columns: 6), damping: 0.01) })
    }

    /// Removing one weight of the first column is the closed-form OBS update
    /// `δw = −(w_q / [H⁻¹]_qq) · H⁻¹[q, :]` of its row; other rows are unchanged.
    func testOneWeightMatchesClosedFormOBS() throws {
        for seed in UInt64(0)..<4 {
            var rng = SeededRandom(seed: seed)
            let (rows, cols) = (4, 7)
            let x = correlatedInputs(60, cols, rng: &rng)
            var w = Matrix(rows: rows, columns: cols, storage: (0..<(rows * cols)).map { _ in
                (rng.nextUniform() < 0.5 ? -1 : 1) * rng.nextUniform(0.5, 1) })
            let target = Int(seed % UInt64(rows))
            w[target, 0] = 1e-4
            let layer = try Dense(weight: w, bias: [1, 2, 3, 4])
            let h = try SecondOrder.hessian(x, damping: 0)
            try SecondOrder.prune(layer, count: 1, hessian: h, blockSize: 3)   // the lowest score is in block 0
            let inverse = try BLAS.inverseSPD(h)
            var expected = w
            for c in 0..<cols {
                expected[target, c] -= w[target, 0] / inverse[0, 0] * inverse[0, c]
            }
            XCTAssertEqual(layer.keptCount, rows * cols - 1)
            XCTAssertEqual(layer.maskOrOnes[target, 0], 0)
            XCTAssertEqual(layer.weight[target, 0].bitPattern, 0, "a pruned weight is exactly +0")
            assertClose(layer.weight.storage, expected.storage, relative: 1e-4, "seed \(seed)")
            XCTAssertEqual(layer.bias, [1, 2, 3, 4])
        }
    }

    /// ‖W·Xᵀ − Ŵ·Xᵀ‖ of OBS is never above magnitude pruning's at the same sparsity; counts are exact.
    func testReconstructionErrorNeverAboveMagnitude() throws {
        for seed in UInt64(0)..<30 {
            var rng = SeededRandom(seed: 100 + seed)
            let (rows, cols) = (9, 24)
            let x = correlatedInputs(200, cols, rng: &rng)
            let w = randomMatrix(rows, cols, rng: &rng)
            let reference = BLAS.matmul(x, .none, w, .transpose)
            func error(_ layer: Dense) -> Double {
                let y = BLAS.matmul(x, .none, layer.weight, .transpose)
                var sum = 0.0
                for i in 0..<y.count {
                    let d = Double(y.storage[i]) - Double(reference.storage[i])
                    sum += d * d
                }
                return sum
            }
            for sparsity in [0.3, 0.6, 0.9] {
                let count = Int((sparsity * Double(rows * cols)).rounded())
                let obs = try Dense(weight: w, bias: [Float](repeating: 0, count: rows))
                try SecondOrder.prune(obs, count: count, hessian: try SecondOrder.hessian(x, damping: 0.01), blockSize: 10)
                let magnitude = try Dense(weight: w, bias: [Float](repeating: 0, count: rows))
                try Pruner(saliency: .magnitude, scope: .layerwise).prune(try Chain([magnitude]), to: sparsity)
                XCTAssertEqual(obs.keptCount, rows * cols - count)
                XCTAssertEqual(magnitude.keptCount, rows * cols - count)
                let mask = obs.maskOrOnes
                for i in 0..<w.count where mask.storage[i] == 0 { XCTAssertEqual(obs.weight.storage[i].bitPattern, 0) }
                XCTAssertLessThanOrEqual(error(obs), error(magnitude), "seed \(seed), sparsity \(sparsity)")
            }
        }
    }

    func testSingularHessianWithoutDampingIsAClearError() throws {
        var rng = SeededRandom(seed: 5)
        let x = randomMatrix(3, 10, rng: &rng)   // rank 3 < 10 inputs
        let w = randomMatrix(2, 10, rng: &rng)
        let layer = try Dense(weight: w, bias: [0, 0])
        assertThrows(.invalidOption, { try SecondOrder.prune(layer, count: 5, hessian: try SecondOrder.hessian(x, damping: 0)) })
        XCTAssertEqual(layer.weight.storage, w.storage, "nothing changes")
        XCTAssertNil(layer.mask)
        // Dampening makes it well posed.
        try SecondOrder.prune(layer, count: 5, hessian: try SecondOrder.hessian(x, damping: 0.01))
        XCTAssertEqual(layer.keptCount, 15)
        XCTAssert(layer.weight.storage.allSatisfy(\.isFinite))
        // Through the pruner too.
        let net = try Chain([try Dense(weight: w, bias: [0, 0])])
        let data = try LabeledData(images: x, labels: [0, 1, 0])
        assertThrows(.invalidOption, { try Pruner(saliency: .obs(data: data, damping: 0), scope: .global).prune(net, to: 0.5) })
    }

    // MARK: Through the pruner

    private func network(seed: UInt64) throws -> Chain {
        var rng = SeededRandom(seed: seed)
        return try Chain([try Dense(12 => 16, .relu, using: &rng), try Dense(16 => 8, .relu, using: &rng), try Dense(8 => 4, using: &rng)])
    }

    func testPrunerWithOBSHasMagnitudeCountsAndMasksOnlyShrink() throws {
        let data = try argmaxProblem(count: 300, seed: 1)
        let net = try network(seed: 2)
        let biases = net.layers.map(\.bias)
        let pruner = Pruner(saliency: .obs(data: data, calibrationSamples: 256), scope: .global)
        XCTAssertEqual(pruner.saliency.name, "obs(256; damping 0.01)")
        var previous: [Matrix] = []
        for sparsity in [0.5, 0.8, 0.95] {
            let probe = net.copy()
            let expected = try Pruner(saliency: .magnitude, scope: .global).prune(probe, to: sparsity)
            let step = try pruner.prune(net, to: sparsity)
            XCTAssertEqual(step.layerPruned, expected.layerPruned, "per-layer counts are global magnitude's")
            for (l, layer) in net.layers.enumerated() {
                let mask = layer.maskOrOnes
                for i in 0..<mask.count where mask.storage[i] == 0 { XCTAssertEqual(layer.weight.storage[i].bitPattern, 0) }
                if l < previous.count {
                    for i in 0..<mask.count where previous[l].storage[i] == 0 { XCTAssertEqual(mask.storage[i], 0, "masks only shrink") }
                }
                XCTAssertEqual(layer.bias, biases[l], "biases untouched")
            }
            previous = net.layers.map(\.maskOrOnes)
        }
        XCTAssertThrowsError(try Pruner(saliency: .obs(data: data), scope: .global, includeBiases: true).prune(net, to: 0.96))
        XCTAssertThrowsError(try Pruner(saliency: .obs(data: data, calibrationSamples: 0), scope: .global).prune(net, to: 0.96))
        XCTAssertThrowsError(try Pruner(saliency: .obs(data: data, damping: .nan), scope: .global).prune(net, to: 0.96))
    }

    func testGlobalOBSBudgetHasExactTotalAndFollowsTheOBSErrors() throws {
        let data = try argmaxProblem(count: 300, seed: 5)
        let net = try network(seed: 6)
        let scores = try Saliency.obs(data: data).scores(for: net)
        let probe = net.copy()
        let expected = try Pruner(saliency: Saliency { _ in scores }, scope: .global).prune(probe, to: 0.7)
        let saliency = Saliency.obs(data: data, globalBudget: true)
        XCTAssert(saliency.name.hasSuffix("; global budget)"), saliency.name)
        let step = try Pruner(saliency: saliency, scope: .global).prune(net, to: 0.7)
        XCTAssertEqual(step.layerPruned, expected.layerPruned)
        let total = net.layers.reduce(0) { $0 + $1.weight.count }
        XCTAssertEqual(net.nonzeroWeightCount, total - Int((0.7 * Double(total)).rounded()))
    }

    func testOBSScoresAndIterativeSchedule() throws {
        let dataset = try argmaxDataset(train: 400, validation: 100, test: 100, seed: 3)
        let net = try network(seed: 4)
        let scores = try Saliency.obs(data: dataset.train).scores(for: net)
        XCTAssertEqual(scores.map(\.count), net.layers.map(\.weight.count))
        XCTAssert(scores.joined().allSatisfy { $0.isFinite && $0 >= 0 })
        // OBS combines with an iterative schedule and fine-tuning: exact counts, zeros stay zero.
        let run = IterativePruner(network: try Chain(sizes: [12, 24, 4], seed: 0), dataset: dataset,
                                  method: .weights(Pruner(saliency: .obs(data: dataset.train), scope: .global)),
                                  plan: .steps(.geometric(fraction: 0.3, milestones: [0.5, 0.8])),
                                  fineTuning: FineTuning(epochsPerStep: 1, finalEpochs: 1),
                                  optimizer: SGD(learningRate: 0.05, momentum: 0.9), batchSize: 32, seed: 3)
        let report = try run.run()
        let total = 12 * 24 + 24 * 4
        XCTAssertEqual(run.network.nonzeroWeightCount, total - Int((0.8 * Double(total)).rounded()))
        XCTAssertEqual(report.steps.count, 5)
        for layer in run.network.layers {
            let mask = layer.maskOrOnes
            for i in 0..<mask.count where mask.storage[i] == 0 { XCTAssertEqual(layer.weight.storage[i], 0) }
        }
        XCTAssertGreaterThan(report.final.testAccuracy, 0.5)
    }
}

/// Least-squares repair after neuron removal (issue 15).
final class LeastSquaresRepairTests: XCTestCase {
    /// A next layer whose removed neurons were linear combinations of kept ones is recovered exactly
    /// (with negligible dampening).
    func testRepairRecoversNeuronsThatWereLinearCombinations() throws {
        var rng = SeededRandom(seed: 9)
        // Hidden layer of 6 identity neurons: neurons 4 and 5 copy combinations of neurons 0…3.
        var w0 = randomMatrix(6, 5, rng: &rng)
        for c in 0..<5 {
            w0[4, c] = 0.5 * w0[0, c] - 2 * w0[2, c]
            w0[5, c] = w0[1, c] + w0[3, c]
        }
        var b0 = (0..<6).map { _ in rng.nextUniform(-1, 1) }
        b0[4] = 0.5 * b0[0] - 2 * b0[2]
        b0[5] = b0[1] + b0[3]
        let second = try Dense(weight: randomMatrix(3, 6, rng: &rng), bias: [0.1, 0.2, 0.3])
        // Make neurons 4 and 5 the weakest by L1 so that they are the ones removed.
        let scale: Float = 1e-3
        var w0s = w0, b0s = b0
        for c in 0..<5 { w0s[4, c] *= scale; w0s[5, c] *= scale }
        b0s[4] *= scale; b0s[5] *= scale
        var w1 = second.weight
        for r in 0..<3 { w1[r, 4] /= scale; w1[r, 5] /= scale }
        let net = try Chain([try Dense(weight: w0s, bias: b0s), try Dense(weight: w1, bias: second.bias)])
        let x = randomMatrix(200, 5, rng: &rng)
        let before = try net.predict(x)
        let data = try LabeledData(images: x, labels: [Int32](repeating: 0, count: 200))
        let removedOnly = net.copy()
        try NeuronPruner(criterion: .l1).prune(removedOnly, to: 2.0 / 6)
        // Exact up to the dampening, which the default (1%) makes a ridge: take it negligible here.
        var pruner = NeuronPruner(criterion: .l1, repair: data)
        pruner.repairDamping = 1e-7
        let step = try pruner.prune(net, to: 2.0 / 6)
        XCTAssertEqual(step.kept, [[0, 1, 2, 3]])
        let after = try net.predict(x)
        assertClose(after.storage, before.storage, relative: 2e-3, "repair recovers the outputs")
        let unrepaired = try removedOnly.predict(x)
        XCTAssertGreaterThan(zip(unrepaired.storage, before.storage).map { abs($0 - $1) }.max() ?? 0, 0.05)
    }

    /// `Σ_{z>0} (p − z)² + Σ_{z≤0} max(p, 0)²` over `n`, the ReLU fit's data term, for predictions `p` of targets `z`.
    private func rectifiedError(_ p: Matrix, _ z: Matrix) -> Double {
        zip(p.storage, z.storage).reduce(0.0) { sum, pair in
            let (pi, zi) = (Double(pair.0), Double(pair.1))
            let r = zi > 0 ? pi - zi : max(pi, 0)
            return sum + r * r
        } / Double(p.rows)
    }

    /// A ReLU layer's refit: its objective (data term plus dampening) falls below the plain least
    /// squares' it starts from; the dampening shrinks the solution.
    func testRectifiedRefitLowersTheReluObjective() throws {
        var rng = SeededRandom(seed: 11)
        let x = randomMatrix(300, 6, rng: &rng)
        // Targets from a wider random layer, so that no exact fit exists; about half are negative.
        let teacher = try Dense(weight: randomMatrix(4, 6, rng: &rng), bias: [0.1, -0.2, 0.3, 0])
        let z = try teacher.predict(x)
        let noise = randomMatrix(300, 4, scale: 0.5, rng: &rng)
        var zNoisy = z
        for i in 0..<z.count { zNoisy.storage[i] += noise.storage[i] }
        func objective(_ layer: Dense, damping: Double) throws -> Double {
            let p = try Dense(weight: layer.weight, bias: layer.bias).predict(x)
            // The dampening term as refit defines it: λ·mean(diag [X, 1]ᵀ[X, 1]/n)·‖[W; b]‖².
            var diag = 1.0
            for c in 0..<6 { diag += (0..<300).reduce(0.0) { $0 + Double(x[$1, c]) * Double(x[$1, c]) } / 300 }
            let norm = layer.weight.storage.reduce(0.0) { $0 + Double($1) * Double($1) } + layer.bias.reduce(0.0) { $0 + Double($1) * Double($1) }
            return rectifiedError(p, zNoisy) + damping * diag / 7 * norm
        }
        let plain = try Dense(weight: Matrix(rows: 4, columns: 6), bias: [0, 0, 0, 0], activation: .relu)
        XCTAssertEqual(try NeuronPruner.refit(plain, inputs: x, targets: zNoisy, damping: 0.01, rectified: false), 0)
        let relu = try Dense(weight: Matrix(rows: 4, columns: 6), bias: [0, 0, 0, 0], activation: .relu)
        let rounds = try NeuronPruner.refit(relu, inputs: x, targets: zNoisy, damping: 0.01, rectified: true)
        XCTAssertGreaterThan(rounds, 1)
        XCTAssertLessThanOrEqual(rounds, NeuronPruner.rectifiedRounds)
        let (before, after) = (try objective(plain, damping: 0.01), try objective(relu, damping: 0.01))
        XCTAssertLessThan(after, 0.9 * before, "the ReLU fit lowers its objective by more than 10% here")
        // Heavy dampening shrinks the weights towards zero.
        let damped = try Dense(weight: Matrix(rows: 4, columns: 6), bias: [0, 0, 0, 0], activation: .relu)
        try NeuronPruner.refit(damped, inputs: x, targets: zNoisy, damping: 100, rectified: true)
        let size = { (l: Dense) in l.weight.storage.reduce(0) { $0 + abs($1) } }
        XCTAssertLessThan(size(damped), 0.1 * size(relu))
    }

    /// With every target positive the ReLU fit is the plain least-squares fit (one round, then no change).
    func testRectifiedRefitWithPositiveTargetsIsThePlainFit() throws {
        var rng = SeededRandom(seed: 12)
        let x = randomMatrix(120, 5, rng: &rng)
        var z = randomMatrix(120, 3, rng: &rng)
        for i in 0..<z.count { z.storage[i] = abs(z.storage[i]) + 0.5 }
        let plain = try Dense(weight: Matrix(rows: 3, columns: 5), bias: [0, 0, 0], activation: .relu)
        try NeuronPruner.refit(plain, inputs: x, targets: z, rectified: false)
        let relu = try Dense(weight: Matrix(rows: 3, columns: 5), bias: [0, 0, 0], activation: .relu)
        let rounds = try NeuronPruner.refit(relu, inputs: x, targets: z, rectified: true)
        XCTAssertEqual(rounds, 1)
        assertClose(relu.weight.storage, plain.weight.storage, relative: 1e-4, "weights")
        assertClose(relu.bias, plain.bias, relative: 1e-4, "biases")
    }

    /// The pruner's repair dampening is checked and reaches the fit.
    func testRepairDampingIsCheckedAndUsed() throws {
        var rng = SeededRandom(seed: 13)
        let data = try LabeledData(images: randomMatrix(200, 8, rng: &rng), labels: [Int32](repeating: 0, count: 200))
        var pruner = NeuronPruner(criterion: .l2, repair: data)
        pruner.repairDamping = -1
        XCTAssertThrowsError(try pruner.prune(try Chain(sizes: [8, 12, 6, 3], seed: 2), to: 0.5))
        pruner.repairDamping = .nan
        XCTAssertThrowsError(try pruner.prune(try Chain(sizes: [8, 12, 6, 3], seed: 2), to: 0.5))
        let light = try Chain(sizes: [8, 12, 6, 3], seed: 2), heavy = try Chain(sizes: [8, 12, 6, 3], seed: 2)
        pruner.repairDamping = 0.01
        try pruner.prune(light, to: 0.5)
        pruner.repairDamping = 1000
        try pruner.prune(heavy, to: 0.5)
        let size = { (c: Chain) in c.layers[2].weight.storage.reduce(0) { $0 + abs($1) } }
        XCTAssertLessThan(size(heavy), 0.1 * size(light))
        XCTAssertEqual(NeuronPruner(criterion: .l1).repairDamping, 0.01)
    }

    func testRepairKeepsPrunedWeightsZero() throws {
        var rng = SeededRandom(seed: 10)
        let net = try Chain(sizes: [8, 12, 6, 3], seed: 1)
        try Pruner(saliency: .magnitude, scope: .global).prune(net, to: 0.5)
        let data = try LabeledData(images: randomMatrix(100, 8, rng: &rng), labels: [Int32](repeating: 0, count: 100))
        try NeuronPruner(criterion: .l2, repair: data).prune(net, to: 0.5)
        for layer in net.layers {
            let mask = layer.maskOrOnes
            for i in 0..<mask.count where mask.storage[i] == 0 { XCTAssertEqual(layer.weight.storage[i], 0) }
            XCTAssert(layer.weight.storage.allSatisfy(\.isFinite))
        }
        XCTAssertEqual(net.sizes, [8, 6, 3, 3])
        XCTAssertThrowsError(try NeuronPruner(criterion: .l2, repair: LabeledData(featureCount: 8)).prune(net, to: 0.6))
    }
}
