/// Examples and their class labels: `images[i]` (one row) has class `labels[i]`.
///
/// Images are a row-major `[count, features]` matrix of `Float` (`[n, 784]` for Fashion-MNIST),
/// labels are class indices in `0..<classCount`.
///
/// ```swift
/// let data = try FashionMNIST.load()
/// let small = data.train.prefix(10_000)   // the first 10,000 training examples
/// small.images.rows                        // 10000
/// ```
public struct LabeledData: Sendable {
    /// The examples, `[count, featureCount]`.
    public var images: Matrix
    /// The class of each example.
    public var labels: [Int32]

    /// Creates labelled data.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` unless there is one label per image row.
    public init(images: Matrix, labels: [Int32]) throws {
        guard images.rows == labels.count else {
            throw TopiaryError(.invalidShape, "LabeledData: \(images.rows) images but \(labels.count) labels")
        }
        self.init(checkedImages: images, labels: labels)
    }

    /// Labelled data whose images and labels are known to match.
    init(checkedImages images: Matrix, labels: [Int32]) {
        self.images = images
        self.labels = labels
    }

    /// Empty data with `featureCount` features per example.
    public init(featureCount: Int) {
        self.init(checkedImages: Matrix(rows: 0, columns: featureCount), labels: [])
    }

    /// The number of examples.
    public var count: Int { labels.count }

    /// The number of features per example (784 for Fashion-MNIST).
    public var featureCount: Int { images.columns }

    /// Whether there are no examples.
    public var isEmpty: Bool { labels.isEmpty }

    /// A copy of the examples in `range`.
    ///
    /// - Precondition: `range` lies within `0..<count`.
    /// - Complexity: O(range.count × featureCount), a copy.
    public func subset(_ range: Range<Int>) -> LabeledData {
        require(range.lowerBound >= 0 && range.upperBound <= count,
                     "LabeledData.subset: \(range) is outside 0..<\(count)")
        let f = featureCount
        return LabeledData(
            checkedImages: Matrix(rows: range.count, columns: f,
                           storage: Array(images.storage[(range.lowerBound * f)..<(range.upperBound * f)])),
            labels: Array(labels[range]))
    }

    /// A copy of the first `min(n, count)` examples.
    public func prefix(_ n: Int) -> LabeledData {
        n >= count ? self : subset(0..<max(0, n))
    }

    /// The number of examples of each class, `histogram[c]` for class `c` in `0..<classCount`.
    ///
    /// Labels outside `0..<classCount` are not counted.
    func classHistogram(classCount: Int) -> [Int] {
        var histogram = [Int](repeating: 0, count: classCount)
        for label in labels where label >= 0 && Int(label) < classCount { histogram[Int(label)] += 1 }
        return histogram
    }

    /// Checks that every label lies in `0..<classCount`.
    ///
    /// - Throws: `corruptFile` naming `source`, the first bad label and its index.
    func checkLabels(classCount: Int, source: String) throws {
        if let i = labels.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
            throw TopiaryError(.corruptFile,
                               "\(source): label \(labels[i]) at index \(i) is outside 0...\(classCount - 1)")
        }
    }

    /// Checks that every feature is finite.
    ///
    /// - Throws: `nonFinite` naming `source` and the first example holding NaN or infinity.
    func checkFinite(source: String) throws {
        if let i = images.firstNonFiniteIndex {
            throw TopiaryError(.nonFinite,
                               "\(source): example \(i / max(1, featureCount)), feature \(i % max(1, featureCount)) is \(images.storage[i])")
        }
    }
}
