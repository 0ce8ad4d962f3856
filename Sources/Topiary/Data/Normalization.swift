/// The affine map from raw input values to what a network sees:
/// `x' = (x · scale − mean) / std`.
///
/// For Fashion-MNIST, `scale = 1/255` maps pixel bytes to `[0, 1]`, and `mean` and `std` are
/// those of the scaled training pixels, so standardised inputs have mean 0 and standard
/// deviation 1. The three numbers are saved in every model file so that every tool feeds a
/// model exactly as it was trained.
///
/// The map is evaluated in `Double` and rounded once to `Float`, so applying it to a pixel byte
/// and to the same pixel stored as a `Float` gives the same bits.
///
/// ```swift
/// let n = Normalization(scale: 1.0 / 255, mean: 0.2860, std: 0.3530)
/// var m = Matrix(rows: 1, columns: 2, storage: [0, 255])
/// n.apply(to: &m)
/// ```
public struct Normalization: Codable, Equatable, Sendable {
    /// The factor applied to raw values first (`1/255` maps bytes to `[0, 1]`).
    public var scale: Float
    /// The value subtracted after scaling.
    public var mean: Float
    /// The divisor applied last.
    public var std: Float

    /// Creates a normalization `x' = (x · scale − mean) / std`.
    public init(scale: Float, mean: Float, std: Float) {
        self.scale = scale
        self.mean = mean
        self.std = std
    }

    /// The map that changes nothing: scale 1, mean 0, std 1.
    public static let identity = Normalization(scale: 1, mean: 0, std: 1)

    /// Scaling of pixel bytes to `[0, 1]` without standardisation.
    public static let unitInterval = Normalization(scale: 1 / 255, mean: 0, std: 1)

    /// Whether this is ``identity``.
    var isIdentity: Bool { self == .identity }

    /// Whether the three numbers are finite and `scale` and `std` are non-zero, so the map is invertible.
    var isValid: Bool {
        scale.isFinite && mean.isFinite && std.isFinite && scale != 0 && std != 0
    }

    /// The normalised value of `x`: `(x · scale − mean) / std`, computed in `Double`.
    @inlinable
    func callAsFunction(_ x: Float) -> Float {
        Float((Double(x) * Double(scale) - Double(mean)) / Double(std))
    }

    /// The normalised value of each of the 256 byte values, for decoding pixels with one table look-up.
    var byteTable: [Float] {
        (0..<256).map { self(Float($0)) }
    }

    /// Normalises every element of `buffer` in place.
    ///
    /// - Complexity: O(n).
    func apply(to buffer: UnsafeMutableBufferPointer<Float>) {
        if isIdentity { return }
        for i in buffer.indices { buffer[i] = self(buffer[i]) }
    }

    /// Normalises every element of `matrix` in place.
    ///
    /// - Complexity: O(rows × columns).
    public func apply(to matrix: inout Matrix) {
        matrix.storage.withUnsafeMutableBufferPointer { apply(to: $0) }
    }

    /// Decodes bytes into normalised floats: `output[i] = self(Float(input[i]))`.
    ///
    /// - Precondition: `output.count >= input.count`.
    func decode(_ input: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<Float>) {
        require(output.count >= input.count, "Normalization.decode: output holds \(output.count), need \(input.count)")
        let table = byteTable
        table.withUnsafeBufferPointer { t in
            guard let tb = t.baseAddress, let ib = input.baseAddress, let ob = output.baseAddress else { return }
            for i in 0..<input.count { ob[i] = tb[Int(ib[i])] }
        }
    }
}
