/// Loss functions with their fused gradients, over row-major `[batch, classes]` outputs.
public enum Loss: String, Sendable, CaseIterable {
    /// Softmax followed by cross-entropy against integer labels, averaged over the batch:
    /// `L = −(1/B) Σ_b log softmax(z_b)[y_b]`, with gradient `(softmax(z) − onehot(y)) / B`.
    /// Computed stably by subtracting each row's maximum.
    case softmaxCrossEntropy
    /// Mean squared error against one-hot labels, averaged over the batch and the outputs:
    /// `L = (1/(B·C)) Σ (z − onehot(y))²`, with gradient `2(z − onehot(y)) / (B·C)`.
    case meanSquaredError

    /// Computes the mean loss over a batch and, when `gradient` is given, writes `∂L/∂output` into it.
    ///
    /// - Parameters:
    ///   - output: the network's outputs `[batch, classes]`.
    ///   - labels: `batch` class indices in `0..<classes`.
    ///   - gradient: `[batch, classes]`, may alias nothing else.
    /// - Returns: the mean loss and the number of rows whose arg-max equals the label.
    @discardableResult
    func evaluate(output: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
                         gradient: UnsafeMutablePointer<Float>?) -> (loss: Double, correct: Int) {
        var total = 0.0
        var correct = 0
        let invB = 1 / Float(batch)
        for b in 0..<batch {
            let z = output + b * classes
            let label = Int(labels[b])
            require(label >= 0 && label < classes, "Loss: label \(label) outside 0..<\(classes)")
            var maxValue = z[0]
            var argMax = 0
            for j in 1..<max(1, classes) where z[j] > maxValue { maxValue = z[j]; argMax = j }
            if argMax == label { correct += 1 }
            switch self {
            case .softmaxCrossEntropy:
                var sum: Float = 0
                for j in 0..<classes { sum += _expf(z[j] - maxValue) }
                let logSum = _logf(sum)
                total += Double(logSum - (z[label] - maxValue))
                if let g = gradient.map({ $0 + b * classes }) {
                    let scale = invB / sum
                    for j in 0..<classes { g[j] = _expf(z[j] - maxValue) * scale }
                    g[label] -= invB
                }
            case .meanSquaredError:
                let scale = 2 / Float(batch * classes)
                var rowSum: Float = 0
                for j in 0..<classes {
                    let d = z[j] - (j == label ? 1 : 0)
                    rowSum += d * d
                    gradient?[b * classes + j] = scale * d
                }
                total += Double(rowSum) / Double(classes)
            }
        }
        return (total / Double(batch), correct)
    }
}
