import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

/// Median seconds of a dense forward pass of `network` over the rows of `input` in batches of
/// `batch` (whole batches only), repeated `repeats` times after a warm-up: how `prune
/// --structured` reports the speed-up of the smaller network. Both networks run through the same
/// dense plan of ``CompiledNetwork``, so only their sizes differ.
func forwardSeconds(_ network: Chain, input: Matrix, batch: Int, repeats: Int) throws -> Double {
    let b = max(1, min(batch, input.rows))
    let compiled = try CompiledNetwork(network, batchSize: b, policy: .dense, threads: BLAS.threadCount)
    var output = [Float](repeating: 0, count: b * network.outputSize)
    let clock = ContinuousClock()
    var times: [Double] = []
    input.storage.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            guard let x = x.baseAddress, let y = y.baseAddress else { return }
            for r in 0...max(1, repeats) {
                let start = clock.now
                var offset = 0
                while offset + b <= input.rows {
                    compiled.forward(x + offset * input.columns, batch: b, into: y)
                    offset += b
                }
                if r > 0 { times.append((clock.now - start).seconds) }
            }
        }
    }
    return times.isEmpty ? 0 : times.sorted()[times.count / 2]
}
