extension Dataset {
    /// Loads a dataset of your own from `path`: a NumPy `.npz` archive, a folder of `.npy` files,
    /// or a folder of IDX files.
    ///
    /// - A `.npz` (as `numpy.savez` or `numpy.savez_compressed` write it) or a folder of `.npy`
    ///   files holds `x_train`, `y_train`, `x_test` and `y_test` (the Keras convention). Inputs
    ///   are `uint8` or floating point (or other integers) of any shape `[n, …]`, flattened to
    ///   rows; labels are integers `[n]` or `[n, 1]`.
    /// - An IDX folder holds `…train-images-idx3-ubyte`, `…train-labels-idx1-ubyte` and the test
    ///   files `…t10k-…` or `…test-…`, raw or `.gz`, with any prefix (MNIST, KMNIST, EMNIST).
    ///
    /// The number of classes is the largest label plus one; the input width, the product of the
    /// input dimensions. `uint8` inputs are scaled by 1/255 as Fashion-MNIST's are; other inputs
    /// are taken as they are. With `standardize`, they are then standardised with the mean and
    /// standard deviation of the training rows actually used, and the validation rows are the
    /// last `validationCount` training rows, exactly as ``FashionMNIST/load(directory:validationCount:standardize:trainLimit:testLimit:normalization:)``
    /// does; an explicit `normalization` (a model's) overrides both.
    ///
    /// ```swift
    /// let data = try Dataset.load(contentsOf: "mnist.npz", validationCount: 5000)
    /// ```
    ///
    /// - Throws: ``TopiaryError``: `fileNotFound` when the path or a member is missing;
    ///   `corruptFile` for damaged archives or arrays, labels that are negative or not integers;
    ///   `nonFinite` for NaN or infinite inputs; `invalidShape` when counts or widths disagree;
    ///   `invalidOption` for counts out of range.
    public static func load(contentsOf path: String, validationCount: Int = 5000, standardize: Bool = true,
                            trainLimit: Int? = nil, testLimit: Int? = nil, normalization: Normalization? = nil) throws -> Dataset {
        let arrays = try DatasetFiles.read(path)
        return try DatasetFiles.assemble(arrays, source: path, validationCount: validationCount, standardize: standardize,
                                         trainLimit: trainLimit, testLimit: testLimit, normalization: normalization)
    }
}

/// Not API: reading the files of ``Dataset/load(contentsOf:validationCount:standardize:trainLimit:testLimit:normalization:)``.
enum DatasetFiles {
    /// Inputs as stored: bytes (scaled by 1/255) or floats (taken as they are).
    enum Inputs {
        case bytes([UInt8])
        case floats([Float])

        var count: Int {
            switch self {
            case .bytes(let b): return b.count
            case .floats(let f): return f.count
            }
        }
    }

    struct Split {
        var inputs: Inputs
        var rows: Int
        var features: Int
        var labels: [Int32]
    }

    /// The largest file read, 8 GiB.
    static let maximumFileSize = 1 << 33

    static func read(_ path: String) throws -> (train: Split, test: Split) {
        switch FileSystem.status(path) {
        case .missing:
            throw TopiaryError(.fileNotFound, "\(path) does not exist: --dataset takes fashion-mnist, a .npz file, or a folder of .npy or IDX files")
        case .file:
            return try archive(FileSystem.readFile(path, maximumSize: maximumFileSize), name: path)
        case .directory:
            let npy = FileSystem.join(path, "x_train.npy")
            if FileSystem.isFile(npy) {
                func file(_ key: String) throws -> NumPyArray {
                    let p = FileSystem.join(path, key + ".npy")
                    guard FileSystem.isFile(p) else { throw TopiaryError(.fileNotFound, "\(path) has x_train.npy but no \(key).npy") }
                    return try NumPyArray.parse(try FileSystem.readFile(p, maximumSize: maximumFileSize), name: p)
                }
                return (try split(file("x_train"), file("y_train")), try split(file("x_test"), file("y_test")))
            }
            return try idxFolder(path)
        case .other:
            throw TopiaryError(.fileNotFound, "\(path) is neither a file nor a folder")
        }
    }

    /// The splits of a `.npz` archive from its bytes; `name` names it in errors.
    static func archive(_ bytes: [UInt8], name path: String) throws -> (train: Split, test: Split) {
        guard bytes.starts(with: [0x50, 0x4B]) else {
            throw TopiaryError(.corruptFile, "\(path) is not a .npz (ZIP) archive; --dataset takes fashion-mnist, a .npz file, or a folder of .npy or IDX files")
        }
        let zip = try ZipArchive(bytes: bytes, name: path)
        func member(_ key: String) throws -> NumPyArray {
            guard let entry = zip.entries.first(where: { $0.name == key + ".npy" || $0.name == key }) else {
                throw TopiaryError(.fileNotFound, "\(path) has no \(key).npy (it holds \(zip.entries.map(\.name).prefix(10).joined(separator: ", "))); a dataset archive holds x_train, y_train, x_test, y_test")
            }
            return try NumPyArray.parse(try zip.contents(of: entry, maximumSize: maximumFileSize), name: "\(path): \(entry.name)")
        }
        return (try split(member("x_train"), member("y_train")), try split(member("x_test"), member("y_test")))
    }

    /// One split from its input and label arrays.
    static func split(_ x: NumPyArray, _ y: NumPyArray) throws -> Split {
        guard x.shape.count >= 1, x.shape[0] >= 1 else { throw TopiaryError(.invalidShape, "\(x.name): inputs need a shape [n, …] with n ≥ 1, got \(x.shape)") }
        guard y.shape == [x.shape[0]] || y.shape == [x.shape[0], 1] else {
            throw TopiaryError(.invalidShape, "\(y.name): labels of shape \(y.shape) for \(x.shape[0]) inputs (\(x.name)); expected [\(x.shape[0])]")
        }
        let rows = x.shape[0], features = x.count / rows
        guard features >= 1, features <= 1 << 24 else { throw TopiaryError(.invalidShape, "\(x.name): \(features) inputs per row") }
        let inputs: Inputs = x.element == .uint8 ? .bytes(Array(x.data)) : .floats(try x.floats())
        return Split(inputs: inputs, rows: rows, features: features, labels: try y.labels())
    }

    /// An IDX folder: images and labels for training and testing, names found by their endings.
    static func idxFolder(_ path: String) throws -> (train: Split, test: Split) {
        let names = FileSystem.listDirectory(path)
        func find(_ endings: [String]) throws -> String {
            for ending in endings {
                if let name = names.sorted().first(where: { $0.hasSuffix(ending) || $0.hasSuffix(ending + ".gz") }) {
                    return FileSystem.join(path, name)
                }
            }
            throw TopiaryError(.fileNotFound, "\(path) holds no x_train.npy and no IDX file ending in \(endings[0])(.gz): --dataset takes fashion-mnist, a .npz file, or a folder of .npy or IDX files")
        }
        func split(_ images: String, _ labels: String) throws -> Split {
            let x = try IDX.read(images), y = try IDX.read(labels)
            guard x.dimensions.count >= 2, x.dimensions[0] >= 1 else { throw TopiaryError(.invalidShape, "\(images): images need dimensions [n, …], got \(x.dimensions)") }
            guard y.dimensions == [x.dimensions[0]] else {
                throw TopiaryError(.invalidShape, "\(images) holds \(x.dimensions[0]) images but \(labels) has dimensions \(y.dimensions)")
            }
            let features = x.dimensions.dropFirst().reduce(1, *)
            return Split(inputs: .bytes(x.bytes), rows: x.dimensions[0], features: features, labels: y.bytes.map { Int32($0) })
        }
        return (try split(find(["train-images-idx3-ubyte"]), find(["train-labels-idx1-ubyte"])),
                try split(find(["t10k-images-idx3-ubyte", "test-images-idx3-ubyte"]), find(["t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"])))
    }

    /// Splits off validation rows, computes or applies the normalisation, and builds the dataset.
    static func assemble(_ arrays: (train: Split, test: Split), source: String, validationCount: Int, standardize: Bool,
                         trainLimit: Int?, testLimit: Int?, normalization: Normalization?) throws -> Dataset {
        let (train, test) = arrays
        guard validationCount >= 0 else { throw TopiaryError(.invalidOption, "validation count must be at least 0, got \(validationCount)") }
        if let trainLimit, trainLimit < 1 { throw TopiaryError(.invalidOption, "train limit must be at least 1, got \(trainLimit)") }
        if let testLimit, testLimit < 0 { throw TopiaryError(.invalidOption, "test limit must be at least 0, got \(testLimit)") }
        if let normalization, !normalization.isValid {
            throw TopiaryError(.invalidOption, "normalization \(normalization) is not invertible (non-finite, or zero scale or std)")
        }
        guard train.features == test.features else {
            throw TopiaryError(.invalidShape, "\(source): training inputs have \(train.features) values per row, test inputs \(test.features)")
        }
        guard validationCount < train.rows else {
            throw TopiaryError(.invalidOption, "validation count \(validationCount) leaves no training rows (\(source) has \(train.rows))")
        }
        let classCount = Int((train.labels + test.labels).max() ?? 0) + 1
        guard classCount >= 2 else { throw TopiaryError(.corruptFile, "\(source): every label is 0; a classifier needs at least two classes") }
        let available = train.rows - validationCount
        let trainCount = min(trainLimit ?? available, available)
        let features = train.features
        let chosen: Normalization
        if let normalization {
            chosen = normalization
        } else {
            switch train.inputs {
            case .bytes(let b):
                chosen = try b.withUnsafeBufferPointer { p in
                    standardize ? try FashionMNIST.standardization(of: UnsafeBufferPointer(rebasing: p[0..<(trainCount * features)]), scale: 1 / 255)
                                : .unitInterval
                }
            case .floats(let f):
                chosen = standardize ? standardization(of: f[0..<(trainCount * features)]) : .identity
            }
        }
        func rows(_ split: Split, _ range: Range<Int>) -> LabeledData {
            let count = range.count * features
            let storage = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                switch split.inputs {
                case .bytes(let b):
                    b.withUnsafeBufferPointer { p in
                        chosen.decode(UnsafeBufferPointer(rebasing: p[(range.lowerBound * features)..<(range.upperBound * features)]), into: buffer)
                    }
                case .floats(let f):
                    for i in 0..<count { buffer[i] = chosen(f[range.lowerBound * features + i]) }
                }
                initialized = count
            }
            return LabeledData(checkedImages: Matrix(rows: range.count, columns: features, storage: storage), labels: Array(split.labels[range]))
        }
        return try Dataset(train: rows(train, 0..<trainCount), validation: rows(train, available..<train.rows),
                           test: rows(test, 0..<min(testLimit ?? test.rows, test.rows)), normalization: chosen, classCount: classCount)
    }

    /// Scale 1, and the mean and population standard deviation of `values` (in `Double`).
    static func standardization(of values: ArraySlice<Float>) -> Normalization {
        guard !values.isEmpty else { return .identity }
        let n = Double(values.count)
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        let std = variance.squareRoot()
        return Normalization(scale: 1, mean: Float(mean), std: std > 0 ? Float(std) : 1)
    }
}
