@_spi(Kernels) @_spi(Benchmarking) import Topiary

/// Measures training and inference speed of a multilayer perceptron against the `sgemm` limit of
/// the same machine, measured in the same run.
///
/// The `sgemm` limit of an epoch is the time OpenBLAS takes for exactly the matrix products an
/// epoch needs (forward `X·Wᵀ`, weight gradient `Gᵀ·X`, input gradient `G·W`, same shapes and
/// transposes, same thread count), and nothing else. `efficiency = sgemm time / epoch time` says
/// how close training comes to it; loss, activations, masks and the optimizer are the overhead.
///
/// ```swift
/// let result = TrainingBenchmark.run(sizes: [784, 300, 100, 10], examples: 60_000, runs: 5)
/// print(result.efficiency)   // e.g. 0.8
/// ```
public enum TrainingBenchmark {
    /// What one benchmark run measured (medians over the runs).
    public struct Result: Codable, Sendable {
        /// Layer sizes, input first.
        public var sizes: [Int]
        /// Examples per epoch.
        public var examples: Int
        /// Examples per batch.
        public var batchSize: Int
        /// OpenBLAS threads.
        public var threads: Int
        /// Timed runs (after one warm-up).
        public var runs: Int
        /// Floating-point operations of one epoch's products.
        public var epochFlops: Double
        /// Median seconds of one training epoch (forward, loss, backward, optimizer step).
        public var epochSeconds: Double
        /// Median seconds of the same products as bare `sgemm` calls.
        public var sgemmSeconds: Double
        /// Achieved GFLOP/s of training.
        public var epochGflops: Double
        /// GFLOP/s of the bare `sgemm` calls.
        public var sgemmGflops: Double
        /// `sgemmSeconds / epochSeconds`: the fraction of the `sgemm` limit training reaches.
        public var efficiency: Double
        /// Median seconds of one forward pass over `examples` at batch 1,000 (evaluation).
        public var forwardSeconds: Double
        /// Achieved GFLOP/s of that forward pass.
        public var forwardGflops: Double
        /// GFLOP/s of one large square `sgemm` (2048³), the machine's peak for reference.
        public var peakSgemmGflops: Double
        /// Median seconds of one epoch of the same network with 90% of every layer's weights masked:
        /// fine-tuning after pruning runs these (the masked products cost as much as dense ones).
        public var maskedEpochSeconds: Double
        /// `maskedEpochSeconds / epochSeconds`: the cost of masking.
        public var maskedEpochRatio: Double

        enum CodingKeys: String, CodingKey {
            case sizes, examples, threads, runs, efficiency
            case batchSize = "batch_size", epochFlops = "epoch_flops", epochSeconds = "epoch_seconds"
            case sgemmSeconds = "sgemm_seconds", epochGflops = "epoch_gflops", sgemmGflops = "sgemm_gflops"
            case forwardSeconds = "forward_seconds", forwardGflops = "forward_gflops"
            case peakSgemmGflops = "peak_sgemm_gflops"
            case maskedEpochSeconds = "masked_epoch_seconds", maskedEpochRatio = "masked_epoch_ratio"
        }
    }

    /// Floating-point operations of one training epoch's matrix products.
    public static func epochFlops(sizes: [Int], examples: Int) -> Double {
        var flops = 0.0
        for l in 0..<(sizes.count - 1) {
            let macs = Double(sizes[l] * sizes[l + 1]) * Double(examples)
            flops += 2 * macs * (l == 0 ? 2 : 3)   // forward, weight gradient, input gradient (not for layer 0)
        }
        return flops
    }

    /// Runs the benchmark on synthetic data (speed does not depend on the pixel values).
    public static func run(sizes: [Int] = [784, 300, 100, 10], examples: Int = 60_000, batchSize: Int = 128,
                           runs: Int = 5, seed: UInt64 = 0) throws -> Result {
        guard examples > 0, batchSize > 0, runs > 0 else {
            throw TopiaryError(.invalidOption, "TrainingBenchmark: examples, batch size and runs must be positive")
        }
        var rng = SeededRandom(seed: seed)
        let features = sizes[0], classes = sizes[sizes.count - 1]
        var images = Matrix(rows: examples, columns: features)
        for i in 0..<images.count { images.storage[i] = rng.nextUniform(-1, 1) }
        let labels = (0..<examples).map { _ in Int32(rng.nextInt(below: classes)) }
        let data = try LabeledData(images: images, labels: labels)
        let network = try Chain(sizes: sizes, seed: seed)
        let trainer = try Trainer(network: network, optimizer: SGD(learningRate: 0.01, momentum: 0.9),
                              batchSize: batchSize, seed: seed)
        func time(_ body: () -> Void) -> Double { Timing.seconds(body) }
        let median = Timing.median

        let masked = try Chain(sizes: sizes, seed: seed &+ 1)
        for layer in masked.layers { layer.prune { _ in rng.nextUniform() < 0.9 } }
        let maskedTrainer = try Trainer(network: masked, optimizer: SGD(learningRate: 0.01, momentum: 0.9),
                                    batchSize: batchSize, seed: seed)

        var epochTimes: [Double] = [], sgemmTimes: [Double] = [], forwardTimes: [Double] = [], maskedTimes: [Double] = []
        let replay = SgemmReplay(sizes: sizes, batchSize: batchSize)
        for run in 0...runs {   // run 0 is the warm-up; the kinds interleave so that noise hits them alike
            let e = time { _ = try? trainer.trainEpoch(data) }
            let s = time { replay.epoch(examples: examples) }
            let f = time { _ = try? network.evaluate(data, batchSize: 1000) }
            let m = time { _ = try? maskedTrainer.trainEpoch(data) }
            if run > 0 { epochTimes.append(e); sgemmTimes.append(s); forwardTimes.append(f); maskedTimes.append(m) }
        }
        let flops = epochFlops(sizes: sizes, examples: examples)
        let forwardFlops = 2 * Double(examples) * Double(zip(sizes, sizes.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 })
        let (epoch, sgemm, forward) = (median(epochTimes), median(sgemmTimes), median(forwardTimes))
        return Result(sizes: sizes, examples: examples, batchSize: batchSize, threads: BLAS.threadCount, runs: runs,
                      epochFlops: flops, epochSeconds: epoch, sgemmSeconds: sgemm,
                      epochGflops: flops / epoch / 1e9, sgemmGflops: flops / sgemm / 1e9, efficiency: sgemm / epoch,
                      forwardSeconds: forward, forwardGflops: forwardFlops / forward / 1e9,
                      peakSgemmGflops: peakSgemmGflops(runs: runs),
                      maskedEpochSeconds: median(maskedTimes), maskedEpochRatio: median(maskedTimes) / epoch)
    }

    /// GFLOP/s of a 2048 × 2048 × 2048 `sgemm` (median of `runs` after a warm-up).
    public static func peakSgemmGflops(size n: Int = 2048, runs: Int = 5) -> Double {
        let a = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var times: [Double] = []
        for run in 0...runs {
            let t = Timing.seconds {
                a.withUnsafeBufferPointer { pa in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.gemm(.none, .none, m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pa.baseAddress!, ldb: n,
                                  c: pc.baseAddress!, ldc: n)
                    }
                }
            }
            if run > 0 { times.append(t) }
        }
        return 2 * Double(n * n * n) / Timing.median(times) / 1e9
    }
}

/// The bare `sgemm` calls of one training epoch, on buffers of the right shapes.
private final class SgemmReplay {
    let sizes: [Int]
    let batchSize: Int
    let weight, input, output, gradient: UnsafeMutablePointer<Float>

    init(sizes: [Int], batchSize: Int) {
        self.sizes = sizes
        self.batchSize = batchSize
        let width = sizes.max() ?? 1
        func make(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            p.initialize(repeating: 0.01, count: n)
            return p
        }
        weight = make(width * width)
        input = make(batchSize * width)
        output = make(batchSize * width)
        gradient = make(max(width * width, batchSize * width))
    }

    deinit { for p in [weight, input, output, gradient] { p.deallocate() } }

    func epoch(examples: Int) {
        var start = 0
        while start < examples {
            let b = min(batchSize, examples - start)
            for l in 0..<(sizes.count - 1) {
                let (k, m) = (sizes[l], sizes[l + 1])
                BLAS.gemm(.none, .transpose, m: b, n: m, k: k, a: input, lda: k, b: weight, ldb: k, c: output, ldc: m)
                BLAS.gemm(.transpose, .none, m: m, n: k, k: b, a: output, lda: m, b: input, ldb: k, c: gradient, ldc: k)
                if l > 0 {
                    BLAS.gemm(.none, .none, m: b, n: k, k: m, a: output, lda: m, b: weight, ldb: k, c: gradient, ldc: k)
                }
            }
            start += b
        }
    }
}
