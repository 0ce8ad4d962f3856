@_spi(Kernels) @_spi(Benchmarking) import Topiary

extension SparseBenchmark {
    /// Whole-network inference throughput at one batch size and thread count.
    public struct NetworkResult: Sendable, Codable, Equatable {
        /// The network's weight sparsity.
        public var sparsity: Double
        /// Samples per forward call.
        public var batch: Int
        /// Threads (OpenBLAS and the CSR kernels).
        public var threads: Int
        /// Samples per second of the dense-masked `Chain` (batch-major `sgemm`).
        public var chainSamplesPerSecond: Double
        /// Samples per second of the `CompiledNetwork` with every layer dense.
        public var denseSamplesPerSecond: Double
        /// Samples per second of the `CompiledNetwork` with the `CompiledNetwork.Policy.automatic` policy.
        public var compiledSamplesPerSecond: Double
        /// Samples per second of the `CompiledNetwork` with every layer CSR (`.sparse`).
        public var sparseSamplesPerSecond: Double
        /// Microseconds per sample of the automatic plan.
        public var microsecondsPerSample: Double
        /// The automatic plan's choice per layer (`dense` or `sparse`), input first.
        public var layers: [String]

        enum CodingKeys: String, CodingKey {
            case sparsity, batch, threads
            case chainSamplesPerSecond = "chain_samples_per_s", denseSamplesPerSecond = "dense_samples_per_s"
            case compiledSamplesPerSecond = "compiled_samples_per_s", sparseSamplesPerSecond = "sparse_samples_per_s"
            case microsecondsPerSample = "us_per_sample", layers
        }
    }

    /// Measures `network` four ways at each batch size and thread count: the `Chain` itself
    /// (dense-masked), a dense `CompiledNetwork`, an automatic one and an all-CSR one; the median of several
    /// runs of about `secondsPerCase` in all (interleaved with one thread, in blocks after pauses
    /// with more: see `Timing.timePaths`). Thread counts are lowered as in ``usableThreads(_:)``.
    public static func network(_ network: Chain, batches: [Int] = [1, 128], threads: [Int] = [1, 2],
                               secondsPerCase: Double = 0.3, seed: UInt64 = 42) throws -> [NetworkResult] {
        let saved = BLAS.threadCount
        defer { BLAS.threadCount = saved }
        var rng = SeededRandom(seed: seed)
        var out: [NetworkResult] = []
        for t in usableThreads(threads) {
            for batch in batches where batch > 0 {
                BLAS.threadCount = t
                let x = (0..<(batch * network.inputSize)).map { _ in rng.nextUniform(0, 1) }
                var y = [Float](repeating: 0, count: batch * network.outputSize)
                var workspace = Chain.Workspace(for: network, batchCapacity: batch)
                let dense = try CompiledNetwork(network, batchSize: batch, policy: .dense, threads: t)
                let auto = try CompiledNetwork(network, batchSize: batch, policy: .automatic, threads: t)
                let sparse = try CompiledNetwork(network, batchSize: batch, policy: .sparse, threads: t)
                var times: [[Double]] = [[], [], [], []]
                x.withUnsafeBufferPointer { px in
                    y.withUnsafeMutableBufferPointer { py in
                        let (a, b) = (px.baseAddress!, py.baseAddress!)
                        let paths: [() -> Void] = [
                            { network.forward(a, batch: batch, workspace: &workspace) },
                            { dense.forward(a, batch: batch, into: b) },
                            { auto.forward(a, batch: batch, into: b) },
                            { sparse.forward(a, batch: batch, into: b) },
                        ]
                        for p in paths { for _ in 0..<3 { p() } }
                        // Each timed sample repeats a path enough to last about 50 µs.
                        let single = max(1e-7, Timing.seconds(paths[0]))
                        let reps = max(1, Int(5e-5 / single))
                        let repeated = paths.map { p in { for _ in 0..<reps { p() } } }
                        times = Timing.timePaths(repeated, threads: t, runs: 101, warmup: 1, budget: secondsPerCase)
                            .map { $0.map { $0 / Double(reps) } }
                    }
                }
                let m = times.map(Timing.median)
                out.append(NetworkResult(sparsity: network.sparsity, batch: batch, threads: t,
                                         chainSamplesPerSecond: Double(batch) / m[0],
                                         denseSamplesPerSecond: Double(batch) / m[1],
                                         compiledSamplesPerSecond: Double(batch) / m[2],
                                         sparseSamplesPerSecond: Double(batch) / m[3],
                                         microsecondsPerSample: m[2] / Double(batch) * 1e6,
                                         layers: auto.choices.map(\.kind.rawValue)))
            }
        }
        return out
    }

    /// LeNet-300-100 (784 → 300 → 100 → 10, ReLU) with every layer randomly pruned to each sparsity,
    /// measured by ``network(_:batches:threads:secondsPerCase:seed:)``.
    public static func lenet(sparsities: [Double] = [0, 0.9, 0.95, 0.98], batches: [Int] = [1, 128],
                             threads: [Int] = [1, 2], secondsPerCase: Double = 0.3) throws -> [NetworkResult] {
        var out: [NetworkResult] = []
        for s in sparsities {
            let net = try Chain(sizes: [784, 300, 100, 10], seed: 1)
            var rng = SeededRandom(seed: 2)
            for layer in net.layers {
                let w = randomWeight(Shape(layer.outputSize, layer.inputSize), sparsity: s, rng: &rng)
                try layer.setMask(Matrix(rows: w.rows, columns: w.columns, storage: w.storage.map { $0 == 0 ? 0 : 1 }))
            }
            out += try network(net, batches: batches, threads: threads, secondsPerCase: secondsPerCase)
        }
        return out
    }

    /// A plain-text table of network results.
    public static func table(_ results: [NetworkResult]) -> String {
        var lines = ["sparsity batch threads  chain/s      dense/s      compiled/s   us/sample  layers"]
        for r in results {
            lines.append(InferenceSupport.pad(InferenceSupport.fixed(r.sparsity, 2), 9) + InferenceSupport.pad("\(r.batch)", 6)
                         + InferenceSupport.pad("\(r.threads)", 8)
                         + InferenceSupport.pad(InferenceSupport.fixed(r.chainSamplesPerSecond, 0), 13)
                         + InferenceSupport.pad(InferenceSupport.fixed(r.denseSamplesPerSecond, 0), 13)
                         + InferenceSupport.pad(InferenceSupport.fixed(r.compiledSamplesPerSecond, 0), 13)
                         + InferenceSupport.pad(InferenceSupport.fixed(r.microsecondsPerSample, 3), 11)
                         + r.layers.joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }
}
