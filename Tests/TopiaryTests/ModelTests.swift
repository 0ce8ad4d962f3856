import XCTest
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) @testable import Topiary

final class ModelTests: XCTestCase {
    /// LeNet-like 12-7-5-3 with some pruning, a plain dense last layer, odd floats.
    func sampleModel() throws -> Model {
        let net = try Chain(sizes: [12, 7, 5, 3], hidden: .relu, output: .identity, seed: 3)
        let first = net.layers[0]
        first.prune { $0 % 3 == 0 }
        net.layers[1].prune { $0 < 10 }
        net.layers[1].activation = .tanh
        net.layers[1].weight[2, 1] = -0.0    // a kept negative zero keeps its sign
        let last = net.layers[2]
        net.layers[2] = try Dense(weight: last.weight, bias: last.bias, activation: .sigmoid)
        return Model(network: net, normalization: Normalization(scale: 1 / 255, mean: 0.2860406, std: 0.35302424),
                     metadata: ["dataset": "fashion-mnist", "note": "é \"q\""])
    }

    func assertSameModel(_ a: Model, _ b: Model, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.network.sizes, b.network.sizes, file: file, line: line)
        XCTAssertEqual(a.normalization, b.normalization, file: file, line: line)
        XCTAssertEqual(a.metadata, b.metadata, file: file, line: line)
        for (x, y) in zip(a.network.layers, b.network.layers) {
            XCTAssertEqual(x.weight.storage.map(\.bitPattern), y.weight.storage.map(\.bitPattern), file: file, line: line)
            XCTAssertEqual(x.bias.map(\.bitPattern), y.bias.map(\.bitPattern), file: file, line: line)
            XCTAssertEqual(x.activation, y.activation, file: file, line: line)
            XCTAssertEqual(x.mask, y.mask, file: file, line: line)
            XCTAssertEqual(x.biasMask, y.biasMask, file: file, line: line)
        }
    }

    func testRoundTripIsExactIncludingMasks() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("model.safetensors")
        let model = try sampleModel()
        try model.save(to: path)
        let back = try Model.load(from: path)
        assertSameModel(model, back)
        XCTAssertEqual(back.network.layers.map { $0.mask != nil }, [true, true, false], "a dense layer stays without a mask")
        XCTAssertEqual(back.network.layers[0].keptCount, model.network.layers[0].keptCount)
        XCTAssertEqual(back.network.layers[1].weight[2, 1].sign, .minus)
        let x = Matrix(rows: 2, columns: 12, storage: (0..<24).map { Float($0) / 7 })
        XCTAssertEqual(back.network(x), model.network(x))
    }

    func testResavingALoadedModelIsByteIdentical() throws {
        let dir = try TemporaryDirectory()
        try sampleModel().save(to: dir.file("a.safetensors"))
        try Model.load(from: dir.file("a.safetensors")).save(to: dir.file("b.safetensors"))
        XCTAssertEqual(try dir.read("a.safetensors"), try dir.read("b.safetensors"))
        XCTAssertEqual(try dir.contents(), ["a.safetensors", "b.safetensors"])
    }

    func testMetadataDescribesTheModel() throws {
        let file = try sampleModel().safeTensors()
        XCTAssertEqual(file.metadata["format"], "topiary")
        XCTAssertEqual(file.metadata["format_version"], "2", "some layer is masked: the version of the encodings")
        XCTAssertEqual(file.metadata["layer_encodings"], "masked,masked,dense")
        XCTAssertEqual(file.metadata["architecture"], "12-7-5-3")
        XCTAssertEqual(file.metadata["activations"], "relu,tanh,sigmoid")
        XCTAssertEqual(file.metadata["input_scale"], "0.003921569")
        XCTAssertEqual(file.metadata["input_mean"], "0.2860406")
        XCTAssertEqual(file.metadata["dataset"], "fashion-mnist")
        XCTAssertEqual(Set(file.tensors.keys), ["layers.0.weight", "layers.0.bias", "layers.0.mask",
                                                "layers.1.weight", "layers.1.bias", "layers.1.mask",
                                                "layers.2.weight", "layers.2.bias"])
        XCTAssertEqual(file.tensors["layers.0.mask"]?.dtype, .uint8)
        XCTAssertEqual(file.tensors["layers.0.mask"]?.shape, [11], "84 mask bits packed in 11 bytes")
        XCTAssertEqual(file.tensors["layers.0.weight"]?.shape, [7, 12])
        // Written before the encodings: version 1, masks one byte per weight, no encodings entry.
        let old = try sampleModel().safeTensors(version1: true)
        XCTAssertEqual(old.metadata["format_version"], "1")
        XCTAssertNil(old.metadata["layer_encodings"])
        XCTAssertEqual(old.tensors["layers.0.mask"]?.shape, [7, 12])
    }

    func testReservedMetadataKeysAreRefused() throws {
        var model = try sampleModel()
        model.metadata["architecture"] = "1-1"
        assertThrowsTopiaryError(.invalidOption, try model.safeTensors())
    }

    func testNonFiniteWeightsAreNotSaved() throws {
        let model = try sampleModel()
        model.network.layers[2].bias[0] = .nan
        assertThrowsTopiaryError(.nonFinite, try model.safeTensors())
    }

    // MARK: Typed records

    /// A recipe with every field set, awkward values included (the largest seed, a Float that is
    /// not a short decimal, a limit).
    func sampleRecipe() -> TrainingRecipe {
        TrainingRecipe(sizes: [12, 7, 5, 3], hiddenActivation: .tanh, outputActivation: .sigmoid,
                       optimizer: OptimizerSettings(.nesterov, learningRate: 0.1 / 3, momentum: 0.9, weightDecay: 5e-4),
                       learningRateSchedule: "cosine(15)", epochs: 15, batchSize: 128, seed: .max,
                       validationCount: 5000, trainLimit: 2000, standardized: false, threads: 2)
    }

    func testTypedRecordsRoundTripExactlyAndResaveByteIdentical() throws {
        var model = try sampleModel()
        model.recipe = sampleRecipe()
        model.epoch = 3
        model.provenance = PruningProvenance(method: "weights(magnitude; global); agp(0.9, 10 steps, ^3.0)", steps: 10,
                                             source: "dense \"β\".safetensors")
        let dir = try TemporaryDirectory()
        try model.save(to: dir.file("a.safetensors"))
        let back = try Model.load(from: dir.file("a.safetensors"))
        XCTAssertEqual(back.recipe, model.recipe)
        XCTAssertEqual(back.recipe?.seed, .max)
        XCTAssertEqual(back.recipe?.optimizer.learningRate.bitPattern, (Float(0.1) / 3).bitPattern)
        XCTAssertEqual(back.epoch, 3)
        XCTAssertEqual(back.provenance, model.provenance)
        assertSameModel(back, model)
        try back.save(to: dir.file("b.safetensors"))
        XCTAssertEqual(try dir.read("a.safetensors"), try dir.read("b.safetensors"))
        // Stored as JSON under fixed keys, readable without Topiary.
        let file = try SafeTensors.read(from: dir.file("a.safetensors"))
        let recipe = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(file.metadata["training_recipe"]).utf8)) as? [String: Any])
        XCTAssertEqual(recipe["sizes"] as? [Int], [12, 7, 5, 3])
        XCTAssertEqual((recipe["optimizer"] as? [String: Any])?["kind"] as? String, "nesterov")
        XCTAssertEqual(file.metadata["training_epoch"], "3")
        XCTAssertNotNil(file.metadata["pruning_provenance"])
        XCTAssertNil(back.metadata["training_recipe"], "typed records are not user metadata")
    }

    func testModelsWithoutTypedRecordsWriteNone() throws {
        let file = try sampleModel().safeTensors()
        for key in ["training_recipe", "training_epoch", "pruning_provenance"] { XCTAssertNil(file.metadata[key]) }
        let back = try Model(safeTensors: file)
        XCTAssertNil(back.recipe)
        XCTAssertNil(back.epoch)
        XCTAssertNil(back.provenance)
    }

    /// Files written before the typed records: free text such as `trained_with` stays user metadata.
    func testOldStyleMetadataStillLoads() throws {
        let old = try load { file in
            file.metadata["trained_with"] = "topiary train --arch 12-7-5-3 --epochs 2 --seed 4"
            file.metadata["epoch"] = "1"
            file.metadata["pruned_from"] = "/home/someone/dense.safetensors"
        }
        XCTAssertNil(old.recipe)
        XCTAssertNil(old.epoch)
        XCTAssertNil(old.provenance)
        XCTAssertEqual(old.metadata["trained_with"], "topiary train --arch 12-7-5-3 --epochs 2 --seed 4")
        XCTAssertEqual(old.metadata["epoch"], "1")
        XCTAssertEqual(old.metadata["dataset"], "fashion-mnist")
        assertThrowsTopiaryError(.invalidOption, try WeightSnapshot.initialization(of: old))
    }

    func testCorruptTypedRecordsAreCorruptAndNameTheKey() throws {
        var withRecords = try sampleModel()
        withRecords.recipe = sampleRecipe()
        let valid = try XCTUnwrap(try withRecords.safeTensors().metadata["training_recipe"])
        let cases: [(String, String)] = [
            ("training_recipe", "not json"),
            ("training_recipe", valid.replacingOccurrences(of: "\"seed\":18446744073709551615", with: "\"seed\":-1")),
            ("training_recipe", valid.replacingOccurrences(of: "\"kind\":\"nesterov\"", with: "\"kind\":\"rmsprop\"")),
            ("training_recipe", "{\"sizes\":[12,7,5,3]}"),
            ("training_epoch", "three"),
            ("training_epoch", "-1"),
            ("pruning_provenance", "{\"steps\":2}"),
            ("pruning_provenance", "[]"),
        ]
        for (key, value) in cases {
            let error = assertThrowsTopiaryError(.corruptFile, try load { $0.metadata[key] = value })
            XCTAssert(error?.message.contains("\"\(key)\"") ?? false, "\(key) = \(value): \(error?.message ?? "")")
            XCTAssert(error?.message.hasPrefix("edited:") ?? false, "\(key) = \(value): \(error?.message ?? "")")
        }
    }

    func testTypedRecordsAreReservedAndChecked() throws {
        var model = try sampleModel()
        model.metadata["training_recipe"] = "{}"
        assertThrowsTopiaryError(.invalidOption, try model.safeTensors())
        model.metadata["training_recipe"] = nil
        model.epoch = -1
        assertThrowsTopiaryError(.invalidOption, try model.safeTensors())
        model.epoch = nil
        model.recipe = sampleRecipe()
        model.recipe?.optimizer.learningRate = .nan
        assertThrowsTopiaryError(.invalidOption, try model.safeTensors())
    }

    /// A snapshot belongs to a model's run when both record the same recipe and it records the epoch asked for.
    func testSnapshotsMatchTheirTrainingRunByTheRecipe() throws {
        let network = try sampleModel().network
        let trained = Model(network: network, recipe: sampleRecipe())
        XCTAssert(Model(network: network, recipe: sampleRecipe(), epoch: 1).isSnapshot(of: trained, atEpoch: 1))
        XCTAssertFalse(Model(network: network, recipe: sampleRecipe(), epoch: 1).isSnapshot(of: trained, atEpoch: 2))
        XCTAssertFalse(Model(network: network, recipe: sampleRecipe()).isSnapshot(of: trained, atEpoch: 1))
        var other = sampleRecipe()
        other.seed = 1
        XCTAssertFalse(Model(network: network, recipe: other, epoch: 1).isSnapshot(of: trained, atEpoch: 1))
        XCTAssertFalse(Model(network: network, epoch: 1).isSnapshot(of: Model(network: network), atEpoch: 1),
                       "without recipes nothing says the runs are the same")
    }

    // MARK: Validation on load

    /// `sampleModel()` written as a version-1 file (one-byte masks), edited, then loaded.
    func load(_ edit: (inout SafeTensors) -> Void) throws -> Model {
        var file = try sampleModel().safeTensors(version1: true)
        edit(&file)
        return try Model(safeTensors: SafeTensors(bytes: file.serialized()), source: "edited")
    }

    func testMaskEntriesOtherThanZeroOrOneAreCorrupt() {
        assertThrowsTopiaryError(.corruptFile, try load { file in
            var mask = file.tensors["layers.0.mask"]?.uint8Values ?? []
            mask[1] = 2
            file.tensors["layers.0.mask"] = .init(uint8: mask, shape: [7, 12])
        })
    }

    func testNonZeroWeightUnderMaskIsCorrupt() {
        let error = assertThrowsTopiaryError(.corruptFile, try load { file in
            var w = file.tensors["layers.0.weight"]?.float32Values ?? []
            w[0] = 0.5   // index 0 is pruned (0 % 3 == 0)
            file.tensors["layers.0.weight"] = .init(float32: w, shape: [7, 12])
        })
        XCTAssertTrue(error?.message.contains("mask") ?? false)
    }

    func testShapesThatDoNotChainAreCorrupt() {
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["architecture"] = "12-8-5-3" })
        assertThrowsTopiaryError(.corruptFile, try load { file in
            file.tensors["layers.1.bias"] = .init(float32: [1, 2, 3], shape: [3])
        })
        assertThrowsTopiaryError(.corruptFile, try load { file in
            file.tensors["layers.2.weight"] = .init(uint8: [UInt8](repeating: 0, count: 15), shape: [3, 5])
        })
    }

    func testMissingOrUnexpectedTensorsAreCorrupt() {
        assertThrowsTopiaryError(.corruptFile, try load { $0.tensors["layers.2.bias"] = nil })
        assertThrowsTopiaryError(.corruptFile, try load { $0.tensors["layers.3.weight"] = .init(float32: [1], shape: [1, 1]) })
    }

    func testBadMetadataIsCorrupt() {
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["format"] = nil })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["format"] = "other" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["format_version"] = "3" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["format_version"] = "2" })   // without layer_encodings
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["activations"] = "relu,relu" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["activations"] = "relu,swish,identity" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["architecture"] = "12--5-3" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["input_std"] = "0" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["input_mean"] = "nan" })
        assertThrowsTopiaryError(.corruptFile, try load { $0.metadata["input_scale"] = nil })
    }

    func testNonFiniteWeightsOnLoadAreReported() {
        assertThrowsTopiaryError(.nonFinite, try load { file in
            var b = file.tensors["layers.2.bias"]?.float32Values ?? []
            b[0] = .infinity
            file.tensors["layers.2.bias"] = .init(float32: b, shape: [3])
        })
    }

    func testMissingAndCorruptFiles() throws {
        let dir = try TemporaryDirectory()
        assertThrowsTopiaryError(.fileNotFound, try Model.load(from: dir.file("none.safetensors")))
        let path = try dir.write("junk.safetensors", [1, 2, 3])
        let error = assertThrowsTopiaryError(.corruptFile, try Model.load(from: path))
        XCTAssertTrue(error?.message.contains(path) ?? false)
    }

    // MARK: Bias masks

    /// `sampleModel()` with biases 1 and 4 of layer 0 pruned.
    func sampleModelWithPrunedBiases() throws -> Model {
        let model = try sampleModel()
        model.network.layers[0].pruneBiases { $0 == 1 || $0 == 4 }
        return model
    }

    func testBiasMaskRoundTripsExactlyAndIsWrittenOnlyWhenSomeBiasIsPruned() throws {
        let dir = try TemporaryDirectory()
        let model = try sampleModelWithPrunedBiases()
        let file = try model.safeTensors()
        // Packed bits, the first bias in the least significant bit: 1,0,1,1,0,1,1 → 0b1101101.
        XCTAssertEqual(file.tensors["layers.0.bias_mask"]?.uint8Values, [0b0110_1101])
        XCTAssertEqual(file.tensors["layers.0.bias_mask"]?.shape, [1])
        XCTAssertEqual(try model.safeTensors(version1: true).tensors["layers.0.bias_mask"]?.uint8Values, [1, 0, 1, 1, 0, 1, 1])
        XCTAssertNil(file.tensors["layers.1.bias_mask"], "no pruned bias, no bias mask")
        try model.save(to: dir.file("a.safetensors"))
        let back = try Model.load(from: dir.file("a.safetensors"))
        assertSameModel(model, back)
        XCTAssertEqual(back.network.layers.map(\.biasMask), model.network.layers.map(\.biasMask))
        XCTAssertEqual(back.network.layers[0].keptBiasCount, 5)
        try back.save(to: dir.file("b.safetensors"))
        XCTAssertEqual(try dir.read("a.safetensors"), try dir.read("b.safetensors"))
    }

    func testFilesWithoutABiasMaskKeepEveryBias() throws {
        let back = try load { _ in }
        XCTAssertEqual(back.network.layers.map(\.keptBiasCount), [7, 5, 3])
        XCTAssertEqual(back.network.layers.map(\.biasMask), [nil, nil, nil])
    }

    func testBadBiasMasksAreCorrupt() throws {
        func edited(_ edit: @escaping (inout SafeTensors) -> Void) throws -> Model {
            var file = try sampleModelWithPrunedBiases().safeTensors(version1: true)
            edit(&file)
            return try Model(safeTensors: SafeTensors(bytes: file.serialized()), source: "edited")
        }
        assertThrowsTopiaryError(.corruptFile, try edited { file in
            file.tensors["layers.0.bias_mask"] = .init(uint8: [1, 0, 2, 1, 0, 1, 1], shape: [7])
        })
        let error = assertThrowsTopiaryError(.corruptFile, try edited { file in
            var b = file.tensors["layers.0.bias"]?.float32Values ?? []
            b[1] = 0.25
            file.tensors["layers.0.bias"] = .init(float32: b, shape: [7])
        })
        XCTAssertTrue(error?.message.contains("bias mask") ?? false, error?.message ?? "")
        assertThrowsTopiaryError(.corruptFile, try edited { file in
            file.tensors["layers.0.bias_mask"] = .init(uint8: [1, 1, 1], shape: [3])
        })
        // A bias mask without a weight mask is a layer whose biases alone are pruned.
        let biasesOnly = try edited { file in
            file.tensors["layers.2.bias_mask"] = .init(uint8: [1, 0, 1], shape: [3])
            var b = file.tensors["layers.2.bias"]?.float32Values ?? []
            b[1] = 0
            file.tensors["layers.2.bias"] = .init(float32: b, shape: [3])
        }
        XCTAssertNil(biasesOnly.network.layers[2].mask)
        XCTAssertEqual(biasesOnly.network.layers[2].biasMask, [1, 0, 1])
    }
}

