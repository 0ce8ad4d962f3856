import Foundation
import XCTest
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) @testable import Topiary

/// The three encodings of a layer in a model file (dense, masked, compressed CSR): layouts, exact
/// round trips and conversions, byte-identical re-saves, `F16` values, sizes, and version-1 files.
final class ModelEncodingTests: XCTestCase {
    /// 10-9-6-4: layer 0 pruned to 20% with a kept weight exactly `0.0`, another `−0.0`, and a
    /// pruned bias; layer 1 with an all-ones mask (nothing pruned yet); layer 2 never pruned.
    func sampleModel() throws -> Model {
        let net = try Chain(sizes: [10, 9, 6, 4], seed: 5)
        let first = net.layers[0]
        first.prune { $0 % 5 != 0 }
        var w = first.weight
        w.storage[0] = 0
        w.storage[5] = -0.0
        try first.setParameters(weight: w)
        first.pruneBiases { $0 == 2 }
        net.layers[1].materializeMasks(biases: false)
        return Model(network: net, normalization: Normalization(scale: 1 / 255, mean: 0.25, std: 0.5),
                     metadata: ["note": "encodings"])
    }

    func assertSameModel(_ a: Model, _ b: Model, masks: Bool = true, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.network.sizes, b.network.sizes, file: file, line: line)
        XCTAssertEqual(a.normalization, b.normalization, file: file, line: line)
        XCTAssertEqual(a.metadata, b.metadata, file: file, line: line)
        for (l, (x, y)) in zip(a.network.layers, b.network.layers).enumerated() {
            XCTAssertEqual(x.weight.storage.map(\.bitPattern), y.weight.storage.map(\.bitPattern), "layer \(l) weights", file: file, line: line)
            XCTAssertEqual(x.bias.map(\.bitPattern), y.bias.map(\.bitPattern), "layer \(l) biases", file: file, line: line)
            XCTAssertEqual(x.activation, y.activation, file: file, line: line)
            if masks {
                XCTAssertEqual(x.mask, y.mask, "layer \(l) mask", file: file, line: line)
                XCTAssertEqual(x.biasMask, y.biasMask, "layer \(l) bias mask", file: file, line: line)
            }
        }
    }

    /// Saves `model` to a new file and loads it back; returns the loaded model and the bytes.
    func roundTrip(_ model: Model, _ encoding: LayerEncoding, halfPrecision: Bool = false,
                   in dir: TemporaryDirectory, name: String = "m.safetensors") throws -> (Model, [UInt8]) {
        let path = dir.file(name)
        try model.save(to: path, encoding: encoding, halfPrecision: halfPrecision)
        return (try Model.load(from: path), try dir.read(path))
    }

    // MARK: Round trips

    func testEveryEncodingRoundTripsBitForBit() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModel()
        for (encoding, expected) in [(LayerEncoding.automatic, "csr,masked,dense"), (.masked, "masked,masked,dense"),
                                     (.compressed, "csr,csr,dense")] {
            let (back, bytes) = try roundTrip(model, encoding, in: dir)
            assertSameModel(model, back)
            let file = try SafeTensors(bytes: bytes)
            XCTAssertEqual(file.metadata["format_version"], "2")
            XCTAssertEqual(file.metadata["layer_encodings"], expected, "\(encoding)")
            XCTAssertEqual(back.network.layers[0].weight.storage[5].sign, .minus, "a kept −0 keeps its sign")
            XCTAssertEqual(back.network.layers[0].mask?.storage[0], 1, "a kept weight that is exactly 0 stays kept")
            XCTAssertEqual(back.network.layers[0].keptCount, 18)
            XCTAssertEqual(back.network.layers[1].mask?.storage, [Float](repeating: 1, count: 54), "an all-ones mask stays a mask")
            XCTAssertNil(back.network.layers[2].mask)
            let x = Matrix(rows: 3, columns: 10, storage: (0..<30).map { Float($0) / 11 - 1 })
            XCTAssertEqual(back.network(x), model.network(x))
        }
    }

    func testResavingALoadedFileWithTheSameEncodingIsByteIdentical() throws {
        let dir = try TemporaryDirectory()
        for encoding in [LayerEncoding.automatic, .dense, .masked, .compressed] {
            for half in encoding == .dense || encoding == .masked ? [false] : [false, true] {
                let (back, first) = try roundTrip(try sampleModel(), encoding, halfPrecision: half, in: dir, name: "a.safetensors")
                let (_, second) = try roundTrip(back, encoding, halfPrecision: half, in: dir, name: "b.safetensors")
                XCTAssertEqual(first, second, "\(encoding), F16 \(half)")
            }
        }
        XCTAssertEqual(try dir.contents(), ["a.safetensors", "b.safetensors"], "no temporary files left")
    }

    func testConversionsBetweenMaskedAndCompressedAreExact() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModel()
        let (masked, maskedBytes) = try roundTrip(model, .masked, in: dir, name: "m.safetensors")
        let (compressed, compressedBytes) = try roundTrip(masked, .compressed, in: dir, name: "c.safetensors")
        assertSameModel(model, compressed)
        let (again, maskedAgain) = try roundTrip(compressed, .masked, in: dir, name: "m2.safetensors")
        assertSameModel(model, again)
        XCTAssertEqual(maskedAgain, maskedBytes, "masked → compressed → masked gives the same file")
        let (_, compressedAgain) = try roundTrip(again, .compressed, in: dir, name: "c2.safetensors")
        XCTAssertEqual(compressedAgain, compressedBytes, "compressed → masked → compressed gives the same file")
        let automatic = try model.safeTensors().serialized()
        XCTAssertLessThan(automatic.count, min(compressedBytes.count, maskedBytes.count),
                          "automatic: layer 0 compressed, the all-ones mask of layer 1 masked")
    }

    func testTheDenseEncodingKeepsWeightsAndBiasesAndDropsMasks() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModel()
        let (back, bytes) = try roundTrip(model, .dense, in: dir)
        assertSameModel(model, back, masks: false)
        XCTAssertEqual(back.network.layers.map { $0.mask == nil && $0.biasMask == nil }, [true, true, true])
        let file = try SafeTensors(bytes: bytes)
        XCTAssertEqual(file.metadata["format_version"], "1", "an all-dense file is a version-1 file")
        XCTAssertNil(file.metadata["layer_encodings"])
        XCTAssertEqual(Set(file.tensors.keys), Set((0..<3).flatMap { ["layers.\($0).weight", "layers.\($0).bias"] }),
                       "a plain state dict: no masks")
        // Dense → masked of an unpruned layer is exact: a layer without a mask stays dense.
        let (again, _) = try roundTrip(back, .compressed, in: dir, name: "c.safetensors")
        assertSameModel(back, again)
    }

    func testLayersWithoutAMaskAreDenseInEveryEncodingAndWriteTheOldFormat() throws {
        let dir = try TemporaryDirectory()
        var model = try sampleModel()
        model.network = try Chain(sizes: [10, 9, 6, 4], seed: 5)
        model.network.layers[0].pruneBiases { $0 == 2 }   // biases alone pruned: no weight mask
        let legacy = try model.safeTensors(version1: true).serialized()
        for encoding in [LayerEncoding.automatic, .masked, .compressed] {
            let (back, bytes) = try roundTrip(model, encoding, in: dir)
            assertSameModel(model, back)
            XCTAssertEqual(bytes, legacy, "\(encoding): an unpruned model is written exactly as before the encodings")
        }
    }

    func testAutomaticTakesTheSmallerOfMaskedAndCompressed() throws {
        let layer = try Dense(100 => 50, seed: 1)
        layer.prune { $0 < 1_000 }   // 20% pruned: CSR 6 bytes per kept weight is more than 4 + 1/8
        XCTAssertEqual(LayerCodec.choose(.automatic, for: layer, halfPrecision: false), .masked)
        XCTAssertEqual(LayerCodec.choose(.automatic, for: layer, halfPrecision: true), .csr, "2 + 2 bytes per kept weight with F16")
        layer.prune { $0 < 2_000 }   // 40%
        XCTAssertEqual(LayerCodec.choose(.automatic, for: layer, halfPrecision: false), .csr)
        XCTAssertEqual(LayerCodec.choose(.dense, for: layer, halfPrecision: false), .dense)
        XCTAssertEqual(LayerCodec.choose(.masked, for: layer, halfPrecision: false), .masked)
        XCTAssertEqual(LayerCodec.choose(.compressed, for: try Dense(4 => 3, seed: 1), halfPrecision: false), .dense,
                       "a layer without a mask has no pattern to compress")
    }

    // MARK: Layouts

    func testMaskBitsArePackedLeastSignificantBitFirstRowMajor() throws {
        let layer = try Dense(weight: Matrix(rows: 2, columns: 5, storage: (1...10).map(Float.init)), bias: [0.5, -0.5])
        // Kept: (0,0) (0,3) (1,1) (1,2) (1,4) → flat 0, 3, 6, 7, 9.
        try layer.setMask(Matrix(rows: 2, columns: 5, storage: [1, 0, 0, 1, 0, 0, 1, 1, 0, 1]))
        let file = try Model(network: Chain([layer])).safeTensors(encoding: .masked)
        XCTAssertEqual(file.tensors["layers.0.mask"]?.dtype, .uint8)
        XCTAssertEqual(file.tensors["layers.0.mask"]?.shape, [2])
        XCTAssertEqual(file.tensors["layers.0.mask"]?.bytes, [0b1100_1001, 0b0000_0010])   // bits 0,3,6,7 | bit 9 → byte 1 bit 1
        XCTAssertEqual(file.tensors["layers.0.weight"]?.float32Values, [1, 0, 0, 4, 0, 0, 7, 8, 0, 10])
        XCTAssertEqual(PackedBits.pack([1, 0, 0, 1, 0, 0, 1, 1, 0, 1]), [0b1100_1001, 0b0000_0010])
        XCTAssertEqual(try PackedBits.unpack([0b1100_1001, 0b0000_0010], count: 10).get(), [1, 0, 0, 1, 0, 0, 1, 1, 0, 1])
    }

    func testCSRTensorsHoldTheMaskPatternWithNarrowIndices() throws {
        let layer = try Dense(weight: Matrix(rows: 3, columns: 4, storage: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), bias: [1, 2, 3])
        try layer.setMask(Matrix(rows: 3, columns: 4, storage: [0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0]))
        var w = layer.weight
        w[2, 1] = 0   // kept, but exactly zero: stored all the same
        try layer.setParameters(weight: w)
        let file = try Model(network: Chain([layer])).safeTensors(encoding: .compressed)
        XCTAssertEqual(file.metadata["layer_encodings"], "csr")
        XCTAssertEqual(file.tensors["layers.0.values"]?.dtype, .float32)
        XCTAssertEqual(file.tensors["layers.0.values"]?.float32Values, [2, 4, 9, 0, 11])
        XCTAssertEqual(file.tensors["layers.0.col_indices"]?.dtype, .uint16)
        XCTAssertEqual(file.tensors["layers.0.col_indices"]?.integers(UInt16.self), [1, 3, 0, 1, 2])
        XCTAssertEqual(file.tensors["layers.0.row_offsets"]?.dtype, .int32)
        XCTAssertEqual(file.tensors["layers.0.row_offsets"]?.shape, [4])
        XCTAssertEqual(file.tensors["layers.0.row_offsets"]?.integers(Int32.self), [0, 2, 2, 5])
        XCTAssertEqual(file.tensors["layers.0.bias"]?.float32Values, [1, 2, 3])
        XCTAssertNil(file.tensors["layers.0.weight"])
        XCTAssertNil(file.tensors["layers.0.mask"])
        let back = try Model(safeTensors: SafeTensors(bytes: file.serialized()))
        XCTAssertEqual(back.network.layers[0].mask, layer.mask)
        XCTAssertEqual(back.network.layers[0].weight, layer.weight)
    }

    func testLayersWiderThan65536InputsUse32BitColumnIndices() throws {
        let dir = try TemporaryDirectory()
        let net = try Chain(sizes: [70_000, 2], seed: 3)
        net.layers[0].prune { $0 % 7 != 0 }
        let model = Model(network: net)
        let (back, bytes) = try roundTrip(model, .compressed, in: dir)
        assertSameModel(model, back)
        let file = try SafeTensors(bytes: bytes)
        XCTAssertEqual(file.tensors["layers.0.col_indices"]?.dtype, .int32)
        XCTAssertEqual(file.tensors["layers.0.col_indices"]?.integers(Int32.self).max(), 69_993)
    }

    func testSixtyFourBitRowOffsetsAndThirtyTwoBitNarrowIndicesLoad() throws {
        var file = try sampleModel().safeTensors(encoding: .compressed)
        let offsets = try XCTUnwrap(file.tensors["layers.0.row_offsets"]).integers(Int32.self)
        file.tensors["layers.0.row_offsets"] = .init(integers: offsets.map(Int64.init), dtype: .int64, shape: [offsets.count])
        let columns = try XCTUnwrap(file.tensors["layers.0.col_indices"]).integers(UInt16.self)
        file.tensors["layers.0.col_indices"] = .init(integers: columns.map(Int32.init), dtype: .int32, shape: [columns.count])
        assertSameModel(try Model(safeTensors: SafeTensors(bytes: file.serialized())), try sampleModel())
    }

    // MARK: F16 values

    func testHalfPrecisionValuesRoundToTheNearestF16AndKeepMasksAndBiasesExact() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModel()
        let (back, bytes) = try roundTrip(model, .compressed, halfPrecision: true, in: dir)
        let file = try SafeTensors(bytes: bytes)
        XCTAssertEqual(file.tensors["layers.0.values"]?.dtype, .float16)
        for (x, y) in zip(model.network.layers, back.network.layers) where x.mask != nil {
            XCTAssertEqual(x.mask, y.mask)
            XCTAssertEqual(x.biasMask, y.biasMask)
            XCTAssertEqual(x.bias.map(\.bitPattern), y.bias.map(\.bitPattern))
            for (w, h) in zip(x.weight.storage, y.weight.storage) {
                XCTAssertEqual(h, Float(Float16(w)))
                // Nearest: no other half-precision number is closer to the weight.
                let half = Float16(w)
                XCTAssertLessThanOrEqual(abs(w - h), abs(w - Float(half.nextUp)))
                XCTAssertLessThanOrEqual(abs(w - h), abs(w - Float(half.nextDown)))
            }
        }
        XCTAssertEqual(back.network.layers[0].weight.storage[5].sign, .minus)
        XCTAssertEqual(back.network.layers[2].weight, model.network.layers[2].weight, "dense layers stay F32")
        XCTAssertEqual(back.network.layers[0].keptCount, 18)
    }

    func testHalfPrecisionIsForCompressedLayersWithinF16Range() throws {
        let model = try sampleModel()
        assertThrowsTopiaryError(.invalidOption, try model.safeTensors(encoding: .masked, halfPrecision: true))
        assertThrowsTopiaryError(.invalidOption, try model.safeTensors(encoding: .dense, halfPrecision: true))
        var w = model.network.layers[0].weight
        w.storage[10] = 70_000   // kept (10 % 5 == 0), beyond ±65504
        try model.network.layers[0].setParameters(weight: w)
        let error = assertThrowsTopiaryError(.invalidOption, try model.safeTensors(encoding: .compressed, halfPrecision: true))
        XCTAssert(error?.message.contains("F16") ?? false, error?.message ?? "")
        XCTAssertNoThrow(try model.safeTensors(encoding: .compressed))
    }

    // MARK: Version-1 files

    func testVersion1FilesWithOneByteMasksStillLoadAndResaveInTheNewEncodings() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModel()
        let old = try model.safeTensors(version1: true)
        XCTAssertEqual(old.tensors["layers.0.mask"]?.shape, [9, 10])
        XCTAssertEqual(old.tensors["layers.0.bias_mask"]?.shape, [9])
        let path = try dir.write("old.safetensors", try old.serialized())
        let back = try Model.load(from: path)
        assertSameModel(model, back)
        let (again, bytes) = try roundTrip(back, .automatic, in: dir, name: "new.safetensors")
        assertSameModel(model, again)
        XCTAssertEqual(try SafeTensors(bytes: bytes).metadata["format_version"], "2")
        XCTAssertLessThan(bytes.count, try old.serialized().count)
    }

    // MARK: Sizes

    /// LeNet-300-100's first layer, 300×784, pruned by magnitude to `sparsity` exactly.
    func prunedFirstLayer(_ sparsity: Double) throws -> Model {
        let net = try Chain(sizes: [784, 300], seed: 7)
        let layer = net.layers[0]
        let count = Int((sparsity * Double(layer.weight.count)).rounded())
        let order = layer.weight.storage.indices.sorted { abs(layer.weight.storage[$0]) < abs(layer.weight.storage[$1]) }
        try layer.prune(indices: order.prefix(count))
        return Model(network: net, normalization: Normalization(scale: 1 / 255, mean: 0.2860406, std: 0.35302424))
    }

    func testCompressed300x784LayerIsSmallEnoughAt90And98Percent() throws {
        for (sparsity, limit, kept) in [(0.9, 0.16, 23_520), (0.98, 0.04, 4_704)] {
            let model = try prunedFirstLayer(sparsity)
            let dense = try model.safeTensors(encoding: .dense).serialized()
            let file = try model.safeTensors()
            XCTAssertEqual(file.metadata["layer_encodings"], "csr")
            XCTAssertEqual(file.tensors["layers.0.values"]?.bytes.count, 4 * kept)
            XCTAssertEqual(file.tensors["layers.0.col_indices"]?.bytes.count, 2 * kept)
            XCTAssertEqual(file.tensors["layers.0.row_offsets"]?.bytes.count, 4 * 301)
            let compressed = try file.serialized()
            XCTAssertLessThanOrEqual(Double(compressed.count), limit * Double(dense.count),
                                     "\(sparsity): \(compressed.count) bytes against \(dense.count) dense")
            let half = try model.safeTensors(halfPrecision: true).serialized()
            XCTAssertEqual(compressed.count - half.count, 2 * kept, "F16 saves 2 bytes per kept weight")
            XCTAssertEqual(try model.safeTensors(encoding: .masked).tensors["layers.0.mask"]?.bytes.count, 29_400,
                           "one bit per weight")
        }
    }

    // MARK: Compiled inference

    func testCompiledNetworkRunsCompressedLayersFromTheFileArrays() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModel()
        let path = dir.file("c.safetensors")
        try model.save(to: path, encoding: .compressed)
        let fromFile = try CompiledNetwork(contentsOf: path, batchSize: 4, policy: .sparse, threads: 1)
        let fromChain = try CompiledNetwork(model.network, batchSize: 4, policy: .sparse, threads: 1)
        XCTAssertEqual(fromFile.choices.map(\.kind), [.sparse, .sparse, .sparse])
        // The compressed layer holds the file's 18 entries, its two explicit zeros included.
        guard case .sparse(let first) = fromFile.steps[0] else { return XCTFail("layer 0 does not run CSR") }
        XCTAssertEqual(first.weight.nonzeroCount, 18)
        XCTAssertEqual(first.weight.dense, model.network.layers[0].weight)
        let x = Matrix(rows: 7, columns: 10, storage: (0..<70).map { Float($0 % 13) / 6 - 1 })
        let (a, b, c) = (try fromFile.predict(x), try fromChain.predict(x), model.network(x))
        for i in 0..<a.count {
            XCTAssertEqual(a.storage[i], b.storage[i], accuracy: 1e-5)
            XCTAssertEqual(a.storage[i], c.storage[i], accuracy: 1e-5)
        }
        let dense = try CompiledNetwork(contentsOf: path, batchSize: 4, policy: .dense, threads: 1)
        XCTAssertEqual(dense.choices.map(\.kind), [.dense, .dense, .dense])
        let d = try dense.predict(x)
        for i in 0..<a.count { XCTAssertEqual(d.storage[i], c.storage[i], accuracy: 1e-5) }
        assertThrowsTopiaryError(.fileNotFound, try CompiledNetwork(contentsOf: dir.file("none.safetensors"), batchSize: 1))
    }
}
