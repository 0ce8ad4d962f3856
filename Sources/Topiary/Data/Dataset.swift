/// A classification dataset split three ways, with the input normalization it was prepared with.
///
/// Decisions (early stopping, sensitivity, per-layer targets, model selection) use
/// ``validation``; ``test`` is only reported.
///
/// ```swift
/// let data = try FashionMNIST.load()
/// data.train.count        // 55000
/// data.validation.count   // 5000
/// data.test.count         // 10000
/// ```
public struct Dataset: Sendable {
    /// The examples a network is trained on.
    public var train: LabeledData
    /// Held-out training examples for decisions.
    public var validation: LabeledData
    /// The test examples, only reported.
    public var test: LabeledData
    /// The map that was applied to the raw inputs of all three splits.
    public var normalization: Normalization
    /// The number of classes; labels lie in `0..<classCount`.
    public var classCount: Int

    /// Creates a dataset from its splits.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the three splits differ in their number of features.
    public init(train: LabeledData, validation: LabeledData, test: LabeledData,
                normalization: Normalization, classCount: Int) throws {
        guard train.featureCount == validation.featureCount && train.featureCount == test.featureCount else {
            throw TopiaryError(.invalidShape, "Dataset: the splits have \(train.featureCount), \(validation.featureCount) and \(test.featureCount) features")
        }
        self.train = train
        self.validation = validation
        self.test = test
        self.normalization = normalization
        self.classCount = classCount
    }

    /// The number of features per example.
    var featureCount: Int { train.featureCount }
}
