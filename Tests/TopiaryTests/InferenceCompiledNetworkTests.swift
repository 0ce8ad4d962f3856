import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

final class InferenceCompiledNetworkTests: XCTestCase {
    /// A chain with every layer pruned to exactly `sparsity` at random positions.
    private func prunedChain(_ sizes: [Int], sparsity: Double, hidden: Activation = .relu, seed: UInt64) throws -> Chain {
        let net = try Chain(sizes: sizes, hidden: hidden, seed: seed)
        var rng = SeededRandom(seed: seed &+ 1)
        for layer in net.layers {
            let mask = SparseTestSupport.randomMatrix(layer.outputSize, layer.inputSize, sparsity: sparsity, rng: &rng)
            try layer.setMask(Matrix(rows: mask.rows, columns: mask.columns, storage: mask.storage.map { $0 == 0 ? 0 : 1 }))
        }
        return net
    }

    /// Asserts `max |a − b| ≤ 1e-5 · max(1e-3, max |b|)`: equal within float rounding, relative to the output's size.
    private func assertClose(_ a: Matrix, _ b: Matrix, _ message: String, line: UInt = #line) {
        XCTAssertEqual(a.rows, b.rows, line: line)
        XCTAssertEqual(a.columns, b.columns, line: line)
        let size = b.storage.reduce(0) { max($0, abs($1)) }
        var worst: Float = 0
        for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a.storage[i] - b.storage[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-5 * max(1e-3, size), message, line: line)
        XCTAssertFalse(a.storage.contains { $0.isNaN }, message, line: line)
    }

    private func input(_ rows: Int, _ columns: Int, seed: UInt64) -> Matrix {
        var rng = SeededRandom(seed: seed)
        return Matrix(rows: rows, columns: columns, storage: SparseTestSupport.randomArray(rows * columns, rng: &rng))
    }

    func testLeNetMatchesTheChainOnEveryVariantBatchAndSparsity() throws {
        for s in [0, 0.5, 0.9, 0.99, 1.0] {
            let net = try prunedChain([784, 300, 100, 10], sparsity: s, seed: 7)
            for batch in [1, 3, 16, 128, 1000] {
                let x = input(batch, 784, seed: UInt64(batch))
                let expected = net(x)
                for variant in SparseKernels.supportedVariants where variant != .scalar || batch <= 16 || s >= 0.9 {
                    let plan = try CompiledNetwork(net, batchSize: batch, policy: .sparse, variant: variant)
                    assertClose(plan(x), expected, "LeNet s=\(s) B=\(batch) \(variant)")
                }
                let dense = try CompiledNetwork(net, batchSize: batch, policy: .dense)
                assertClose(dense(x), expected, "LeNet dense s=\(s) B=\(batch)")
            }
        }
    }

    /// At batch 1 the first layer reads the caller's input and the last writes the caller's output
    /// directly; an output that overlaps the input (in place) still gets the out-of-place bits.
    func testForwardInPlaceGivesTheOutOfPlaceBits() throws {
        for (sizes, batch) in [([40, 40], 1), ([40, 30, 40], 1), ([40, 40], 3), ([40, 30, 40], 128)] {
            let net = try prunedChain(sizes, sparsity: 0.9, seed: 21)
            for policy in [CompiledNetwork.Policy.sparse, .dense] {
                let plan = try CompiledNetwork(net, batchSize: batch, policy: policy, threads: 2)
                let x = input(batch, 40, seed: 22).storage
                var expected = [Float](repeating: 0, count: batch * 40)
                x.withUnsafeBufferPointer { px in
                    expected.withUnsafeMutableBufferPointer { plan.forward(px.baseAddress!, batch: batch, into: $0.baseAddress!) }
                }
                var buffer = x
                buffer.withUnsafeMutableBufferPointer { plan.forward(UnsafePointer($0.baseAddress!), batch: batch, into: $0.baseAddress!) }
                XCTAssertEqual(buffer, expected, "\(sizes) B=\(batch) \(policy)")
                // Overlapping in part: the output starts 5 floats into the input.
                var shifted = x + [Float](repeating: 0, count: 5)
                shifted.withUnsafeMutableBufferPointer { plan.forward(UnsafePointer($0.baseAddress!), batch: batch, into: $0.baseAddress! + 5) }
                XCTAssertEqual(Array(shifted[5...]), expected, "\(sizes) B=\(batch) \(policy), shifted")
                assertClose(Matrix(rows: batch, columns: 40, storage: expected), net(input(batch, 40, seed: 22)), "\(sizes) B=\(batch) \(policy)")
            }
        }
    }

    func testSlabsAcrossTwoThreadsMatchTheChainAndOneThreadBitForBit() throws {
        let net = try prunedChain([784, 300, 100, 10], sparsity: 0.9, seed: 11)
        // Two slabs (the kernels' panel width: 64 with AVX2, 128 with AVX-512), plus one: the
        // last slab takes the odd sample (a lone sample would take the SpMV path).
        let panel = SparseKernels.panelWidth(SparseKernels.bestVariant)
        try XCTSkipIf(panel == 0, "the scalar kernels do not cut slabs")
        try XCTSkipIf(Threads.processors < 2, "two threads run as one on one processor: no slabs")
        for batch in [2 * panel, 2 * panel + 1, 3 * panel + 8, 1000] {
            let x = input(batch, 784, seed: UInt64(batch) + 7)
            let two = try CompiledNetwork(net, batchSize: batch, policy: .sparse, threads: 2)
            let slab = try XCTUnwrap(two.slabWidth, "2 threads at batch \(batch) should cut slabs")
            XCTAssertEqual(slab, SparseKernels.panelWidth(two.variant))
            let one = try CompiledNetwork(net, batchSize: batch, policy: .sparse, threads: 1)
            XCTAssertNil(one.slabWidth)
            let y2 = two(x), y1 = one(x)
            assertClose(y2, net(x), "slabs B=\(batch)")
            XCTAssertEqual(y2.storage, y1.storage, "the CSR kernels give the same bits whether a column is in a slab or not, B=\(batch)")
            // A call with fewer samples than two slabs runs layer by layer, same values.
            let small = input(3, 784, seed: 5)
            assertClose(two(small), net(small), "B=3 through a slabbed plan")
        }
        // Mixed dense and CSR layers: each thread runs its slab's sgemm on its own.
        let half = try prunedChain([784, 300, 100, 10], sparsity: 0.5, seed: 12)
        try half.layers[2].setMask(Matrix(rows: 10, columns: 100, repeating: 0))
        let mixed = try CompiledNetwork(half, batchSize: 256, policy: .threshold(0.95), threads: 2)
        XCTAssertEqual(mixed.choices.map(\.kind), [.dense, .dense, .sparse])
        XCTAssertNotNil(mixed.slabWidth)
        let x = input(256, 784, seed: 13)
        assertClose(mixed(x), half(x), "slabs, dense and CSR layers")
        // Automatic times both modes on whole passes; either way the outputs match.
        let sparse90 = try prunedChain([784, 300, 100, 10], sparsity: 0.9, seed: 14)
        let auto = try CompiledNetwork(sparse90, batchSize: 256, policy: .automatic, threads: 2)
        assertClose(auto(x), sparse90(x), "automatic, 2 threads, slabs \(String(describing: auto.slabWidth))")
        // Without a CSR layer OpenBLAS threads the whole batch.
        XCTAssertNil(try CompiledNetwork(half, batchSize: 256, policy: .dense, threads: 2).slabWidth)
    }

    func testCompilingAndRunningLeaveTheOpenBLASThreadCountAsTheyFoundIt() throws {
        let saved = BLAS.threadCount
        defer { BLAS.threadCount = saved }
        BLAS.threadCount = 1
        let net = try prunedChain([784, 300, 100, 10], sparsity: 0.9, seed: 15)
        for policy in [CompiledNetwork.Policy.automatic, .sparse, .dense] {
            let plan = try CompiledNetwork(net, batchSize: 256, policy: policy, threads: 2)
            XCTAssertEqual(BLAS.threadCount, 1, "after compiling, \(policy)")
            _ = plan(input(256, 784, seed: 16))
            _ = plan(input(1, 784, seed: 17))
            XCTAssertEqual(BLAS.threadCount, 1, "after running, \(policy)")
        }
    }

    func testAwkwardShapesMatchTheChain() throws {
        for (sizes, hidden) in [([13, 129, 7, 1, 13], Activation.tanh), ([1, 7, 1], .sigmoid), ([129, 13, 129], .relu)] {
            for s in [0, 0.5, 0.9, 0.99, 1.0] {
                let net = try prunedChain(sizes, sparsity: s, hidden: hidden, seed: 9)
                for batch in [1, 3, 16, 128, 1000] {
                    let x = input(batch, sizes[0], seed: UInt64(batch) + 100)
                    let expected = net(x)
                    for variant in SparseKernels.supportedVariants {
                        let plan = try CompiledNetwork(net, batchSize: batch, policy: .sparse, variant: variant)
                        assertClose(plan(x), expected, "\(sizes) s=\(s) B=\(batch) \(variant)")
                    }
                    let mixed = try CompiledNetwork(net, batchSize: batch, policy: .threshold(0.6), threads: 2)
                    assertClose(mixed(x), expected, "\(sizes) mixed s=\(s) B=\(batch)")
                }
            }
        }
    }

    func testAutomaticKeepsLayersUnderHalfSparseDense() throws {
        let net = try Chain(sizes: [300, 200, 100], seed: 4)
        let layers = net.layers
        layers[0].prune { $0 % 10 < 4 }          // 40%: dense whatever the timing
        layers[1].prune { $0 % 100 != 0 }        // 99%: timed
        for threads in [1, 2] {
            let plan = try CompiledNetwork(net, batchSize: 16, policy: .automatic, threads: threads)
            XCTAssertEqual(plan.choices[0].kind, .dense, "threads \(threads)")
            XCTAssertNil(plan.choices[0].sparseSeconds, "a layer under 50% is not timed")
            XCTAssertNotNil(plan.choices[1].sparseSeconds)
            assertClose(plan(input(16, 300, seed: 5)), net(input(16, 300, seed: 5)), "threads \(threads)")
        }
    }

    func testAutomaticDecisionNeedsHalfSparsityAndAFivePercentWin() {
        XCTAssertFalse(CompiledNetwork.picksSparse(sparsity: 0.4999, denseSeconds: 1, sparseSeconds: 0.1))
        XCTAssertTrue(CompiledNetwork.picksSparse(sparsity: 0.5, denseSeconds: 1, sparseSeconds: 0.1))
        XCTAssertFalse(CompiledNetwork.picksSparse(sparsity: 0.9, denseSeconds: 1, sparseSeconds: 0.96))
        XCTAssertTrue(CompiledNetwork.picksSparse(sparsity: 0.9, denseSeconds: 1, sparseSeconds: 0.94))
    }

    func testAllDensePlansGiveTheChainsBits() throws {
        let net = try prunedChain([784, 300, 100, 10], sparsity: 0.3, seed: 22)
        for threads in [1, 2] {
            for batch in [1, 2, 16, 128] {
                let plan = try CompiledNetwork(net, batchSize: batch, policy: .dense, threads: threads)
                let x = input(batch, 784, seed: UInt64(batch) + 41)
                let saved = BLAS.threadCount
                BLAS.threadCount = threads      // OpenBLAS's bits depend on its thread count
                let expected = net(x)
                BLAS.threadCount = saved
                XCTAssertEqual(plan(x).storage, expected.storage, "threads \(threads), batch \(batch)")
            }
        }
    }

    func testBatchMajorDenseLayersMatchTheChainBelowBatch64() throws {
        // With two threads, dense layers at batches under 64 run batch-major between transposes.
        let net = try prunedChain([784, 300, 100, 10], sparsity: 0.3, seed: 21)
        for (compiled, calls) in [(16, [1, 16]), (63, [63, 5]), (64, [64, 63]), (256, [256, 63, 2])] {
            for policy in [CompiledNetwork.Policy.dense, .threshold(0.2)] {
                let plan = try CompiledNetwork(net, batchSize: compiled, policy: policy, threads: 2)
                for n in calls {
                    let x = input(n, 784, seed: UInt64(n) + 31)
                    assertClose(plan(x), net(x), "\(policy) compiled \(compiled), batch \(n)")
                }
            }
        }
    }

    func testThresholdPicksCSRAtOrAboveTheSparsity() throws {
        let net = try Chain(sizes: [50, 40, 30, 10], seed: 1)
        let layers = net.layers
        layers[0].prune { $0 % 2 == 0 }          // 50%
        layers[1].prune { $0 % 10 != 0 }         // 90%
        let plan = try CompiledNetwork(net, batchSize: 4, policy: .threshold(0.5))
        XCTAssertEqual(plan.choices.map(\.kind), [.sparse, .sparse, .dense])
        XCTAssertEqual(plan.choices[0].sparsity, 0.5, accuracy: 1e-12)
        XCTAssertEqual(plan.choices[1].sparsity, 0.9, accuracy: 1e-12)
        XCTAssertNil(plan.choices[0].denseSeconds)
        let strict = try CompiledNetwork(net, batchSize: 4, policy: .threshold(0.6))
        XCTAssertEqual(strict.choices.map(\.kind), [.dense, .sparse, .dense])
    }

    func testDenseAndSparsePoliciesAreUniform() throws {
        let net = try prunedChain([20, 10, 5], sparsity: 0.5, seed: 2)
        XCTAssertEqual(try CompiledNetwork(net, batchSize: 2, policy: .dense).choices.map(\.kind), [.dense, .dense])
        XCTAssertEqual(try CompiledNetwork(net, batchSize: 2, policy: .sparse).choices.map(\.kind), [.sparse, .sparse])
    }

    func testAutomaticTimesEveryLayerAndKeepsTheFasterPreferringDenseOnNearTies() throws {
        let net = try prunedChain([784, 300, 100, 10], sparsity: 0.95, seed: 4)
        let plan = try CompiledNetwork(net, batchSize: 16, policy: .automatic)
        XCTAssertEqual(plan.choices.count, 3)
        for c in plan.choices {
            let d = try? XCTUnwrap(c.denseSeconds), s = try? XCTUnwrap(c.sparseSeconds)
            XCTAssertNotNil(d)
            XCTAssertNotNil(s)
            if let d, let s {
                XCTAssertGreaterThan(d, 0)
                XCTAssertGreaterThan(s, 0)
                XCTAssertEqual(c.kind, s < d * 0.95 ? .sparse : .dense)
            }
        }
        XCTAssertTrue(plan.report.contains("784"))
        let x = input(40, 784, seed: 5)
        assertClose(plan(x), net(x), "automatic")
    }

    func testLargerInputsRunInPiecesOfTheBatchSize() throws {
        let net = try prunedChain([30, 20, 4], sparsity: 0.7, seed: 6)
        let plan = try CompiledNetwork(net, batchSize: 8, policy: .sparse)
        let x = input(29, 30, seed: 8)
        assertClose(plan(x), net(x), "pieces")
    }

    func testCompiledNetworkIsASnapshot() throws {
        let net = try prunedChain([10, 6], sparsity: 0.5, seed: 10)
        let x = input(3, 10, seed: 11)
        let before = net(x)
        let plan = try CompiledNetwork(net, batchSize: 3, policy: .sparse)
        net.layers[0].bias = net.layers[0].bias.map { $0 + 1 }
        assertClose(plan(x), before, "snapshot")
    }

    func testPrunedBiasesCompileAsZeroBiases() throws {
        let net = try prunedChain([30, 20, 4], sparsity: 0.7, seed: 12)
        try Pruner(saliency: .magnitude, scope: .global, includeBiases: true).prune(net, to: 0.8)
        XCTAssert(net.layers.contains { $0.hasPrunedBiases })
        let x = input(5, 30, seed: 13)
        for policy in [CompiledNetwork.Policy.dense, .sparse] {
            assertClose(try CompiledNetwork(net, batchSize: 5, policy: policy)(x), net(x), "\(policy)")
        }
    }

    func testEvaluateAndPredictMatchTheChain() throws {
        let data = try argmaxDataset(train: 10, validation: 10, test: 300, seed: 14)
        let net = try prunedChain([12, 24, 4], sparsity: 0.9, seed: 15)
        let expected = try net.evaluate(data.test)
        for policy in [CompiledNetwork.Policy.dense, .sparse] {
            let plan = try CompiledNetwork(net, batchSize: 64, policy: policy, threads: 1)
            let got = try plan.evaluate(data.test)
            XCTAssertEqual(got.count, 300)
            XCTAssertEqual(got.accuracy, expected.accuracy, "\(policy)")
            XCTAssertEqual(got.loss, expected.loss, accuracy: 1e-5, "\(policy)")
            assertClose(try plan.predict(data.test.images), try net.predict(data.test.images), "\(policy)")
        }
    }

    func testWrongWidthsAndSizesThrowWithTheSizes() throws {
        let net = try prunedChain([12, 6, 4], sparsity: 0.5, seed: 16)
        let plan = try CompiledNetwork(net, batchSize: 8, policy: .sparse, threads: 1)
        XCTAssertThrowsError(try plan.predict(Matrix(rows: 2, columns: 13))) { error in
            XCTAssertEqual(error.localizedDescription, "CompiledNetwork(12-6-4): expected input with 12 columns, got 2×13")
        }
        XCTAssertThrowsError(try net.predict(Matrix(rows: 2, columns: 13))) { error in
            XCTAssertEqual(error.localizedDescription, "Chain: layer 0 Dense(12 => 6) expects input with 12 columns, got 2×13")
        }
        XCTAssertThrowsError(try CompiledNetwork(net, batchSize: 0)) { XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption) }
        XCTAssertThrowsError(try CompiledNetwork(net, batchSize: 8, threads: 0)) { XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption) }
    }

    func testDefaultThreadCountIsTheLibraryDefault() throws {
        let saved = Threads.count
        defer { Threads.count = saved }
        Threads.count = 1
        XCTAssertEqual(try CompiledNetwork(try prunedChain([8, 4], sparsity: 0.5, seed: 17), batchSize: 4).threads, 1)
        Threads.count = 2   // one on a one-processor machine; the plan follows whatever it holds
        XCTAssertEqual(try CompiledNetwork(try prunedChain([8, 4], sparsity: 0.5, seed: 17), batchSize: 4).threads, Threads.count)
    }

    /// More threads than the processors the process may run on only queue behind one another:
    /// every thread count Topiary takes stops at that number, which the kernel's own view of the
    /// affinity mask (`Cpus_allowed_list` in `/proc/self/status`) confirms.
    func testThreadCountsStopAtTheProcessorsTheProcessMayRunOn() throws {
        let saved = Threads.count
        defer { Threads.count = saved }
        let n = Threads.processors
        XCTAssertEqual(try SparseTestSupport.allowedCPUs().count, n)
        XCTAssertEqual([-3, 0, 1, n, n + 1, 10_000].map(Threads.usable), [1, 1, 1, n, n, n])
        Threads.count = n + 7   // OpenBLAS may hold fewer (its build's MAX_THREADS, a sequential build)
        XCTAssert((1...n).contains(Threads.count), "\(Threads.count) threads on \(n) processors")
        Threads.count = 0
        XCTAssertEqual(Threads.count, 1)
        let net = try prunedChain([8, 4], sparsity: 0.5, seed: 17)
        XCTAssertEqual(try CompiledNetwork(net, batchSize: 4, threads: 1024).threads, min(1024, n))
        XCTAssertThrowsError(try CompiledNetwork(net, batchSize: 4, threads: 1025)) { XCTAssertEqual(($0 as? TopiaryError)?.kind, .invalidOption) }
    }
}
