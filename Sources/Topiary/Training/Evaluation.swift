/// Loss and accuracy of a network on a labelled set.
public struct Evaluation: Encodable, Sendable, Equatable {
    /// The mean loss.
    public var loss: Double
    /// The fraction of examples whose arg-max output is the label, in `0...1`.
    public var accuracy: Double
    /// The number of examples evaluated.
    public var count: Int
}

extension Chain {
    /// Evaluates the network on `data` in batches of `batchSize` (no shuffling, no gradients).
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the data's feature count differs from
    ///   ``inputSize``, ``TopiaryError/Kind/invalidOption`` for a label outside ``outputSize``
    ///   classes.
    public func evaluate(_ data: LabeledData, loss: Loss = .softmaxCrossEntropy, batchSize: Int = 1000) throws -> Evaluation {
        try data.check(against: self, source: "Chain.evaluate: the data")
        guard data.count > 0 else { return Evaluation(loss: 0, accuracy: 0, count: 0) }
        let b = min(max(1, batchSize), data.count)
        var workspace = Workspace(for: self, batchCapacity: b)
        var totalLoss = 0.0
        var correct = 0
        data.images.storage.withUnsafeBufferPointer { images in
            data.labels.withUnsafeBufferPointer { labels in
                var start = 0
                while start < data.count {
                    let n = min(b, data.count - start)
                    let y = forward(images.baseAddress! + start * inputSize, batch: n, workspace: &workspace)
                    let r = loss.evaluate(output: y, labels: labels.baseAddress! + start, batch: n,
                                          classes: outputSize, gradient: nil)
                    totalLoss += r.loss * Double(n)
                    correct += r.correct
                    start += n
                }
            }
        }
        return Evaluation(loss: totalLoss / Double(data.count), accuracy: Double(correct) / Double(data.count),
                          count: data.count)
    }
}

extension LabeledData {
    /// Checks that the data fits `network`: as many features as its inputs, labels among its outputs.
    func check(against network: Chain, source: String) throws {
        guard featureCount == network.inputSize else {
            throw TopiaryError(.invalidShape, "\(source) has \(featureCount) features per example; the network \(network.sizes.map(String.init).joined(separator: "-")) expects \(network.inputSize)")
        }
        if let i = labels.firstIndex(where: { $0 < 0 || Int($0) >= network.outputSize }) {
            throw TopiaryError(.invalidOption, "\(source): label \(labels[i]) at index \(i) is outside the network's \(network.outputSize) classes (0...\(network.outputSize - 1))")
        }
    }
}
