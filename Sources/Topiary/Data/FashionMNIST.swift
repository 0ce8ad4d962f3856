/// The Fashion-MNIST dataset (Xiao, Rasul & Vollgraf 2017): 28 × 28 grey images of clothing in
/// 10 classes, 60,000 for training and 10,000 for testing, stored as four IDX files.
///
/// On Debian and Ubuntu the files come with the package `dataset-fashion-mnist`, in
/// ``defaultDirectory``.
///
/// ```swift
/// let data = try FashionMNIST.load()                         // 55,000 / 5,000 / 10,000
/// let quick = try FashionMNIST.load(trainLimit: 10_000, testLimit: 1_000)
/// ```
public enum FashionMNIST {
    /// Where the Debian package `dataset-fashion-mnist` installs the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// The number of classes.
    public static let classCount = 10
    /// The side of an image in pixels.
    static let imageSide = 28
    /// The number of pixels per image, 784.
    public static let featureCount = imageSide * imageSide
    /// The names of the classes, by label.
    static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// The four files, each read raw or with a `.gz` suffix.
    static let fileNames = (trainImages: "train-images-idx3-ubyte", trainLabels: "train-labels-idx1-ubyte",
                                   testImages: "t10k-images-idx3-ubyte", testLabels: "t10k-labels-idx1-ubyte")

    /// Loads Fashion-MNIST, splits off a validation set and normalises the pixels.
    ///
    /// - The validation set is the **last** `validationCount` training images; the training
    ///   set is the images before them (the first `trainLimit` of those, if given).
    /// - Pixels are scaled to `[0, 1]`; with `standardize`, they are then standardised with the
    ///   mean and standard deviation of the pixels of the training set actually used (so the
    ///   validation and test sets stay unseen). The statistics are computed exactly from a
    ///   256-bin histogram in `Double`, then rounded to `Float`, the precision saved in model files.
    /// - An explicit `normalization` (for instance the one saved with a model) overrides both.
    ///
    /// Each image is decoded once from its bytes straight into its final `Float` matrix, so the
    /// peak memory is the `Float` dataset plus one file's bytes (about 235 MB in all).
    ///
    /// - Parameters:
    ///   - directory: the folder holding the four files (raw or `.gz`).
    ///   - validationCount: how many training images to hold out, from the end.
    ///   - standardize: whether to standardise after scaling to `[0, 1]`.
    ///   - trainLimit: at most this many training images (a prefix), for quick runs.
    ///   - testLimit: at most this many test images (a prefix), for quick runs.
    ///   - normalization: the map to apply instead of computing one.
    /// - Throws: ``TopiaryError``: `fileNotFound` naming a missing file and how to install the
    ///   dataset; `corruptFile` for damaged files or labels outside `0...9`; `invalidShape`
    ///   when images are not 28 × 28 or image and label counts differ; `invalidOption` for
    ///   counts out of range.
    public static func load(directory: String = defaultDirectory, validationCount: Int = 5000,
                            standardize: Bool = true, trainLimit: Int? = nil, testLimit: Int? = nil,
                            normalization: Normalization? = nil) throws -> Dataset {
        guard validationCount >= 0 else {
            throw TopiaryError(.invalidOption, "validation count must be at least 0, got \(validationCount)")
        }
        if let trainLimit, trainLimit < 1 {
            throw TopiaryError(.invalidOption, "train limit must be at least 1, got \(trainLimit)")
        }
        if let testLimit, testLimit < 0 {
            throw TopiaryError(.invalidOption, "test limit must be at least 0, got \(testLimit)")
        }
        if let normalization, !normalization.isValid {
            throw TopiaryError(.invalidOption, "normalization \(normalization) is not invertible (non-finite, or zero scale or std)")
        }
        let paths = (trainImages: try locate(fileNames.trainImages, in: directory),
                     trainLabels: try locate(fileNames.trainLabels, in: directory),
                     testImages: try locate(fileNames.testImages, in: directory),
                     testLabels: try locate(fileNames.testLabels, in: directory))

        // Training file: split, compute the normalization, decode; its bytes are freed at the end of the scope.
        let (train, validation, chosen): (LabeledData, LabeledData, Normalization) = try {
            let labels = try readLabels(paths.trainLabels)
            let images = try readImages(paths.trainImages, expectedCount: labels.count, labelsPath: paths.trainLabels)
            guard validationCount < labels.count else {
                throw TopiaryError(.invalidOption,
                                   "validation count \(validationCount) leaves no training images (the file has \(labels.count))")
            }
            let available = labels.count - validationCount
            let trainCount = min(trainLimit ?? available, available)
            let chosen = try images.withUnsafeBufferPointer { pixels -> Normalization in
                if let normalization { return normalization }
                guard standardize else { return .unitInterval }
                return try standardization(of: UnsafeBufferPointer(rebasing: pixels[0..<(trainCount * featureCount)]),
                                       scale: 1 / 255)
            }
            let train = decode(images, labels, rows: 0..<trainCount, normalization: chosen)
            let validation = decode(images, labels, rows: available..<labels.count, normalization: chosen)
            return (train, validation, chosen)
        }()

        let test: LabeledData = try {
            let labels = try readLabels(paths.testLabels)
            let images = try readImages(paths.testImages, expectedCount: labels.count, labelsPath: paths.testLabels)
            let testCount = min(testLimit ?? labels.count, labels.count)
            return decode(images, labels, rows: 0..<testCount, normalization: chosen)
        }()

        return try Dataset(train: train, validation: validation, test: test, normalization: chosen, classCount: classCount)
    }

    /// The normalization that maps `pixels` (bytes) to mean 0 and standard deviation 1 after
    /// multiplying by `scale`: `mean` and `std` are those of `Float(pixel) · scale`.
    ///
    /// Computed exactly from a 256-bin histogram, the moments in `Double` (the population
    /// standard deviation, dividing by the pixel count), then rounded to `Float`.
    /// Returns `Normalization(scale: scale, mean: 0, std: 1)` for no pixels or constant pixels.
    ///
    /// - Complexity: O(pixels.count).
    static func standardization(of pixels: UnsafeBufferPointer<UInt8>, scale: Float) throws -> Normalization {
        var histogram = [Int](repeating: 0, count: 256)
        histogram.withUnsafeMutableBufferPointer { h in
            guard let hb = h.baseAddress, let pb = pixels.baseAddress else { return }
            for i in 0..<pixels.count { hb[Int(pb[i])] += 1 }
        }
        let n = Double(pixels.count)
        guard pixels.count > 0 else { return Normalization(scale: scale, mean: 0, std: 1) }
        var sum = 0.0
        for v in 0..<256 { sum += Double(histogram[v]) * Double(v) }
        let mean = sum / n
        var squares = 0.0
        for v in 0..<256 { let d = Double(v) - mean; squares += Double(histogram[v]) * d * d }
        let std = (squares / n).squareRoot()
        guard std > 0 else { return Normalization(scale: scale, mean: Float(mean * Double(scale)), std: 1) }
        return Normalization(scale: scale, mean: Float(mean * Double(scale)), std: Float(std * Double(scale)))
    }

    /// The path of `name` or `name.gz` in `directory` (the raw file first).
    static func locate(_ name: String, in directory: String) throws -> String {
        let raw = FileSystem.join(directory, name)
        if FileSystem.isFile(raw) { return raw }
        let gz = raw + ".gz"
        if FileSystem.isFile(gz) { return gz }
        let folderNote: String
        switch FileSystem.status(directory) {
        case .directory: folderNote = ""
        default: folderNote = " (the folder \(directory) does not exist)"
        }
        throw TopiaryError(.fileNotFound,
                           "Fashion-MNIST file \(gz) not found\(folderNote). Install the dataset with `sudo apt-get install dataset-fashion-mnist`, or pass --data-dir with the folder holding \(name)(.gz).")
    }

    static func readLabels(_ path: String) throws -> [Int32] {
        let file = try IDX.read(path)
        guard file.dimensions.count == 1 else {
            throw TopiaryError(.invalidShape, "\(path): labels must be one-dimensional, the file has dimensions \(file.dimensions)")
        }
        if let i = file.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw TopiaryError(.corruptFile, "\(path): label \(file.bytes[i]) at index \(i) is outside 0...\(classCount - 1)")
        }
        return file.bytes.map { Int32($0) }
    }

    static func readImages(_ path: String, expectedCount: Int, labelsPath: String) throws -> [UInt8] {
        let file = try IDX.read(path)
        guard file.dimensions.count == 3, file.dimensions[1] == imageSide, file.dimensions[2] == imageSide else {
            throw TopiaryError(.invalidShape, "\(path): images must be [n, 28, 28], the file has dimensions \(file.dimensions)")
        }
        guard file.dimensions[0] == expectedCount else {
            throw TopiaryError(.invalidShape,
                               "\(path) holds \(file.dimensions[0]) images but \(labelsPath) holds \(expectedCount) labels")
        }
        return file.bytes
    }

    /// Decodes image rows straight into a new `Float` matrix, without an intermediate copy.
    static func decode(_ images: [UInt8], _ labels: [Int32], rows: Range<Int>,
                       normalization: Normalization) -> LabeledData {
        let count = rows.count * featureCount
        let storage = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            images.withUnsafeBufferPointer { pixels in
                let source = UnsafeBufferPointer(rebasing: pixels[(rows.lowerBound * featureCount)..<(rows.upperBound * featureCount)])
                normalization.decode(source, into: buffer)
            }
            initialized = count
        }
        return LabeledData(checkedImages: Matrix(rows: rows.count, columns: featureCount, storage: storage),
                           labels: Array(labels[rows]))
    }
}
