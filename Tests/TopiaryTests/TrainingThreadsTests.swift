import XCTest
@_spi(Kernels) @_spi(Benchmarking) @testable import Topiary

/// The element-wise passes of a training step (bias and activation, their backward pass with the
/// bias gradient, the optimizers' updates) run on the kernels' pool in ranges fixed by the sizes
/// alone, so the bits never depend on how many threads run them.
final class TrainingThreadsTests: XCTestCase {
    private var savedThreads = 1

    override func setUp() {
        super.setUp()
        savedThreads = Threads.count
    }

    override func tearDown() {
        Threads.count = savedThreads
        super.tearDown()
    }

    func testChunksCoverEveryIndexOnceWhateverTheThreads() {
        for threads in [1, 2, 4] {
            Threads.count = threads
            for (count, chunk) in [(0, 5), (1, 5), (5, 5), (6, 5), (100_003, 16_384), (40, 1)] {
                let hits = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(1, count))
                hits.initialize(repeating: 0)
                defer { hits.deallocate() }
                var ranges = [Range<Int>](repeating: 0..<0, count: max(1, (count + chunk - 1) / chunk))
                ranges.withUnsafeMutableBufferPointer { r in
                    Threads.forEachChunk(count: count, chunk: chunk, cost: 1_000) { range in
                        r[range.lowerBound / chunk] = range
                        for i in range { hits[i] += 1 }
                    }
                }
                XCTAssertEqual(Array(hits.prefix(count)), [Int32](repeating: 1, count: count), "count \(count), chunk \(chunk), threads \(threads)")
                if count > 0 {
                    XCTAssertEqual(ranges, (0..<ranges.count).map { $0 * chunk ..< min(count, ($0 + 1) * chunk) })
                }
            }
        }
    }

    func testBackwardByColumnsMatchesTheWholePassBitForBit() {
        var rng = SeededRandom(seed: 7)
        let (batch, width) = (37, 53)
        let y = randomMatrix(batch, width, rng: &rng), g = randomMatrix(batch, width, rng: &rng)
        for activation in Activation.allCases {
            // Outputs as the activation gives them (ReLU zeros, tanh in (−1, 1), sigmoid in (0, 1)).
            let outputs = y.storage.map { activation($0) }
            var whole = g.storage, split = g.storage
            var wholeBias = [Float](repeating: .nan, count: width), splitBias = wholeBias
            outputs.withUnsafeBufferPointer { o in
                whole.withUnsafeMutableBufferPointer { w in
                    wholeBias.withUnsafeMutableBufferPointer { b in
                        activation.backward(output: o.baseAddress!, gradient: w.baseAddress!, batch: batch, width: width,
                                            columns: 0..<width, biasGradient: b.baseAddress!)
                    }
                }
                split.withUnsafeMutableBufferPointer { s in
                    splitBias.withUnsafeMutableBufferPointer { b in
                        for start in stride(from: 0, to: width, by: 7) {
                            activation.backward(output: o.baseAddress!, gradient: s.baseAddress!, batch: batch, width: width,
                                                columns: start..<min(width, start + 7), biasGradient: b.baseAddress!)
                        }
                    }
                }
            }
            XCTAssertEqual(whole.map(\.bitPattern), split.map(\.bitPattern), "\(activation)")
            XCTAssertEqual(wholeBias.map(\.bitPattern), splitBias.map(\.bitPattern), "\(activation)")
            // Against the definition, in double precision.
            for j in [0, 17, width - 1] {
                var expected = 0.0
                for r in 0..<batch {
                    let o = Double(outputs[r * width + j]), d = Double(g.storage[r * width + j])
                    let dz: Double
                    switch activation {
                    case .identity: dz = d
                    case .relu: dz = o > 0 ? d : 0
                    case .tanh: dz = d * (1 - o * o)
                    case .sigmoid: dz = d * o * (1 - o)
                    }
                    XCTAssertEqual(Double(whole[r * width + j]), dz, accuracy: 1e-6)
                    expected += dz
                }
                XCTAssertEqual(Double(wholeBias[j]), expected, accuracy: 1e-4, "\(activation) bias \(j)")
            }
        }
    }

    /// One step of each optimizer from the same gradients (computed once, on one thread) gives the
    /// same weights on one thread and on four; the layer (300×200) spans several chunks.
    func testOptimizerStepsGiveTheSameBitsOnAnyNumberOfThreads() throws {
        let makers: [(String, () -> Optimizer)] = [
            ("sgd", { SGD(learningRate: 0.1, weightDecay: 0.01) }),
            ("momentum", { SGD(learningRate: 0.1, momentum: 0.9) }),
            ("nesterov", { SGD(learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01) }),
            ("adam", { Adam(learningRate: 0.01, weightDecay: 0.01) }),
            ("adamw", { Adam.adamW(learningRate: 0.01, weightDecay: 0.1) }),
        ]
        var rng = SeededRandom(seed: 11)
        let x = randomMatrix(64, 200, rng: &rng)
        let labels: [Int32] = (0..<64).map { Int32($0 % 10) }
        for (name, make) in makers {
            var results: [[UInt32]] = []
            for threads in [1, 4] {
                let net = try Chain(sizes: [200, 300, 10], seed: 3)
                net.layers[0].prune { $0 % 3 == 0 }
                let optimizer = make()
                var ws = Chain.Workspace(for: net, batchCapacity: 64)
                for _ in 0..<3 {
                    Threads.count = 1   // the same gradients for both runs
                    x.storage.withUnsafeBufferPointer { px in
                        labels.withUnsafeBufferPointer { pl in
                            let y = net.forward(px.baseAddress!, batch: 64, workspace: &ws)
                            Loss.softmaxCrossEntropy.evaluate(output: y, labels: pl.baseAddress!, batch: 64, classes: 10, gradient: ws.outputGradient)
                            net.backward(px.baseAddress!, batch: 64, workspace: &ws)
                        }
                    }
                    Threads.count = threads
                    optimizer.step(net)
                }
                results.append(net.layers.flatMap { $0.weight.storage.map(\.bitPattern) + $0.bias.map(\.bitPattern) })
            }
            XCTAssertEqual(results[0], results[1], name)
        }
    }
}
