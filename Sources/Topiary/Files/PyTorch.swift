/// Not API (the command-line tool's `import` and `export --format pytorch`): multilayer
/// perceptrons as PyTorch state dicts saved by `safetensors.torch.save_file`.
///
/// A state dict holds, per `nn.Linear`, `PREFIX.weight` (`[out, in]`) and `PREFIX.bias`
/// (`[out]`), in F32, F16, BF16 or F64: `fc1.weight`, `fc2.weight`, … or `net.0.weight`,
/// `net.2.weight`, …. The order of the layers comes from the prefixes compared as a person
/// would (`fc2` before `fc10`), checked against the shapes: each layer's input must be the
/// previous one's output; when the names do not chain, the shapes alone decide if they can.
@_spi(Files) public enum PyTorch {
    /// A state dict's `nn.Linear` layers, as `(prefix, weight, bias)`, in network order.
    static func layers(of file: SafeTensors, path: String, order: [String]?) throws -> [(String, Matrix, [Float])] {
        func fail(_ message: String) -> TopiaryError { TopiaryError(.invalidShape, "\(path): \(message)") }
        var weights: [String: SafeTensors.Tensor] = [:], biases: [String: SafeTensors.Tensor] = [:]
        for (name, tensor) in file.tensors {
            if name.hasSuffix(".weight") {
                weights[String(name.dropLast(7))] = tensor
            } else if name.hasSuffix(".bias") {
                biases[String(name.dropLast(5))] = tensor
            } else {
                throw fail("tensor \"\(name)\" is not the weight or bias of a Linear layer; only multilayer perceptrons (Linear layers and activations) are imported")
            }
        }
        for prefix in biases.keys where weights[prefix] == nil { throw fail("\(prefix).bias has no \(prefix).weight") }
        guard !weights.isEmpty else { throw fail("no Linear layer (no tensor named PREFIX.weight)") }
        for (prefix, w) in weights {
            guard w.shape.count == 2, w.shape[0] >= 1, w.shape[1] >= 1 else {
                throw fail("\(prefix).weight has shape \(w.shape); a Linear weight is [out, in]")
            }
            if let b = biases[prefix], b.shape != [w.shape[0]] {
                throw fail("\(prefix).bias has shape \(b.shape); \(prefix).weight \(w.shape) needs [\(w.shape[0])]")
            }
        }
        var prefixes: [String]
        if let order {
            for p in order where weights[p] == nil { throw fail("--map names \(p), which is not a layer (layers: \(weights.keys.sorted(by: naturalOrder).joined(separator: ", ")))") }
            guard Set(order).count == order.count else { throw fail("--map names a layer twice") }
            guard Set(order) == Set(weights.keys) else {
                throw fail("--map leaves out \(Set(weights.keys).subtracting(order).sorted(by: naturalOrder).joined(separator: ", "))")
            }
            prefixes = order
        } else {
            prefixes = weights.keys.sorted(by: naturalOrder)
            if !chains(prefixes, weights) {
                // The shapes alone: the one layer whose input no other layer gives, then each layer
                // whose input is the last output. Widths are looked up, not searched: a state dict
                // of thousands of layers must not take quadratic time.
                let shapes = prefixes.map { (prefix: $0, input: weights[$0]?.shape[1] ?? 0, output: weights[$0]?.shape[0] ?? 0) }
                var givers: [Int: Int] = [:]               // how many layers output each width
                var takers: [Int: Set<String>] = [:]       // the layers not yet chained, by input width
                for s in shapes {
                    givers[s.output, default: 0] += 1
                    takers[s.input, default: []].insert(s.prefix)
                }
                var starts = shapes.filter { (givers[$0.input] ?? 0) - ($0.output == $0.input ? 1 : 0) == 0 }.map(\.prefix)
                var chain: [String] = []
                while starts.count == 1, let next = starts.first, let w = weights[next] {
                    chain.append(next)
                    takers[w.shape[1]]?.remove(next)
                    starts = Array(takers[w.shape[0]] ?? [])
                }
                guard chain.count == prefixes.count, chains(chain, weights) else {
                    throw fail("the layers \(prefixes.joined(separator: ", ")) do not chain by name (\(prefixes.map { "\(weights[$0]?.shape ?? [])" }.joined(separator: ", "))) and their shapes do not decide an order; give it with --map")
                }
                prefixes = chain
            }
        }
        guard chains(prefixes, weights) else {
            throw fail("the layers \(prefixes.joined(separator: ", ")) do not chain: \(prefixes.map { "\($0) \(weights[$0]?.shape ?? [])" }.joined(separator: ", "))")
        }
        return try prefixes.map { p in
            guard let w = weights[p] else { throw fail("no \(p).weight") }
            let values = try floats(w, name: "\(p).weight", path: path)
            let bias = try biases[p].map { try floats($0, name: "\(p).bias", path: path) } ?? [Float](repeating: 0, count: w.shape[0])
            return (p, Matrix(rows: w.shape[0], columns: w.shape[1], storage: values), bias)
        }
    }

    private static func chains(_ prefixes: [String], _ weights: [String: SafeTensors.Tensor]) -> Bool {
        zip(prefixes, prefixes.dropFirst()).allSatisfy { a, b in weights[a]?.shape[0] == weights[b]?.shape[1] }
    }

    /// `a` before `b` as a person orders names: runs of digits compare as numbers (`fc2` < `fc10`).
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        func chunks(_ s: String) -> [(String, Int?)] {
            var out: [(String, Int?)] = []
            var current = "", digits = false
            for c in s {
                if c.isNumber != digits, !current.isEmpty { out.append((current, digits ? Int(current) : nil)); current = "" }
                digits = c.isNumber
                current.append(c)
            }
            if !current.isEmpty { out.append((current, digits ? Int(current) : nil)) }
            return out
        }
        let (x, y) = (chunks(a), chunks(b))
        for (p, q) in zip(x, y) {
            if let m = p.1, let n = q.1, m != n { return m < n }
            if p.0 != q.0 { return p.0 < q.0 }
        }
        return x.count < y.count
    }

    /// A tensor's values as `Float`, refusing NaN and infinities.
    static func floats(_ t: SafeTensors.Tensor, name: String, path: String) throws -> [Float] {
        let n = t.elementCount, b = t.bytes
        var out = [Float](repeating: 0, count: n)
        func u16(_ i: Int) -> UInt16 { UInt16(b[2 * i]) | UInt16(b[2 * i + 1]) << 8 }
        func u32(_ i: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[4 * i + $1]) << (8 * UInt32($1)) } }
        func u64(_ i: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[8 * i + $1]) << (8 * UInt64($1)) } }
        for i in 0..<n {
            switch t.dtype {
            case .float32: out[i] = Float(bitPattern: u32(i))
            case .float16: out[i] = Float(halfBits: u16(i))
            case .bfloat16: out[i] = Float(bitPattern: UInt32(u16(i)) << 16)
            case .float64: out[i] = Float(Double(bitPattern: u64(i)))
            default: throw TopiaryError(.corruptFile, "\(path): \(name) is \(t.dtype.rawValue); weights must be F32, F16, BF16 or F64")
            }
            guard out[i].isFinite else { throw TopiaryError(.nonFinite, "\(path): \(name) holds \(out[i]) at index \(i)") }
        }
        return out
    }

    /// Reads the state dict at `path` as a network whose hidden layers use `activation` (the
    /// last layer none), with `normalization` for its inputs; `order` lists the layer prefixes
    /// when the names do not give it; `sizes`, when given, must be the network's.
    public static func importModel(from path: String, order: [String]? = nil, sizes: [Int]? = nil,
                                   activation: Activation = .relu, normalization: Normalization = .identity) throws -> Model {
        try importModel(try SafeTensors.read(from: path), path: path, order: order, sizes: sizes, activation: activation,
                        normalization: normalization)
    }

    /// ``importModel(from:order:sizes:activation:normalization:)`` from a state dict's container;
    /// `path` names it in errors.
    static func importModel(_ file: SafeTensors, path: String, order: [String]? = nil, sizes: [Int]? = nil,
                            activation: Activation = .relu, normalization: Normalization = .identity) throws -> Model {
        let layers = try self.layers(of: file, path: path, order: order)
        let found = [layers[0].1.columns] + layers.map { $0.1.rows }
        if let sizes, sizes != found {
            throw TopiaryError(.invalidShape, "\(path): the layers \(layers.map(\.0).joined(separator: ", ")) make \(found.map(String.init).joined(separator: "-")), not \(sizes.map(String.init).joined(separator: "-"))")
        }
        guard normalization.isValid else { throw TopiaryError(.invalidOption, "normalization \(normalization) is not invertible") }
        let dense = try layers.enumerated().map { i, l in
            try Dense(weight: l.1, bias: l.2, activation: i == layers.count - 1 ? .identity : activation)
        }
        return Model(network: try Chain(dense), normalization: normalization,
                     metadata: ["imported_from": "pytorch", "imported_layers": layers.map(\.0).joined(separator: ",")])
    }

    /// Writes `model`'s network as the state dict of `nn.Sequential(Linear, act, Linear, act, …, Linear)`:
    /// `0.weight`, `0.bias`, `2.weight`, … (an activation takes an index of its own), F32, pruned
    /// weights as zeros, with the architecture, activations and normalisation in the metadata.
    /// Returns the tensor names.
    @discardableResult
    public static func export(_ model: Model, to path: String) throws -> [String] {
        var tensors: [String: SafeTensors.Tensor] = [:], names: [String] = []
        var index = 0
        for (i, layer) in model.network.layers.enumerated() {
            tensors["\(index).weight"] = SafeTensors.Tensor(float32: layer.weight.storage, shape: [layer.outputSize, layer.inputSize])
            tensors["\(index).bias"] = SafeTensors.Tensor(float32: layer.bias, shape: [layer.outputSize])
            names += ["\(index).weight", "\(index).bias"]
            index += (i == model.network.layers.count - 1 || layer.activation == .identity) ? 1 : 2
        }
        let n = model.normalization
        let metadata = ["format": "pytorch-state-dict", "architecture": model.network.sizes.map(String.init).joined(separator: "-"),
                        "activations": model.network.layers.map { "\($0.activation)" }.joined(separator: ","),
                        "input_scale": "\(n.scale)", "input_mean": "\(n.mean)", "input_std": "\(n.std)"]
        try SafeTensors(tensors: tensors, metadata: metadata).write(to: path)
        return names
    }
}

extension PyTorch {
    /// The PyTorch module whose state dict ``export(_:to:)`` writes for `network`, e.g.
    /// `nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))`.
    public static func sequentialDescription(of network: Chain) -> String {
        let modules = network.layers.flatMap { layer -> [String] in
            let linear = "nn.Linear(\(layer.inputSize), \(layer.outputSize))"
            switch layer.activation {
            case .identity: return [linear]
            case .relu: return [linear, "nn.ReLU()"]
            case .tanh: return [linear, "nn.Tanh()"]
            case .sigmoid: return [linear, "nn.Sigmoid()"]
            }
        }
        return "nn.Sequential(\(modules.joined(separator: ", ")))"
    }
}

extension Float {
    /// The value of IEEE 754 half-precision bits.
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31, exponent = Int((h >> 10) & 0x1F), fraction = UInt32(h & 0x3FF)
        switch exponent {
        case 0:
            // Zero or subnormal: fraction · 2⁻²⁴.
            let magnitude = Float(fraction) * Float(sign: .plus, exponent: -24, significand: 1)
            self = sign != 0 ? -magnitude : magnitude
        case 31:
            self = Float(bitPattern: sign | 0x7F80_0000 | fraction << 13)
        default:
            self = Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | fraction << 13)
        }
    }
}
