/// Loss and accuracy of a network on a labelled set.
public struct Evaluation: Codable, Sendable, Equatable {
    /// The mean loss.
    public var loss: Double
    /// The fraction of examples whose arg-max output is the label, in `0...1`.
    public var accuracy: Double
    /// The number of examples evaluated.
    public var count: Int
}

extension Chain {
    /// Evaluates the network on `data` in batches of `batchSize` (no shuffling, no gradients).
    public func evaluate(_ data: LabeledData, loss: Loss = .softmaxCrossEntropy, batchSize: Int = 1000) -> Evaluation {
        precondition(data.featureCount == inputSize,
                     "Chain.evaluate: data has \(data.featureCount) features, the network expects \(inputSize)")
        guard data.count > 0 else { return Evaluation(loss: 0, accuracy: 0, count: 0) }
        let b = min(batchSize, data.count)
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
