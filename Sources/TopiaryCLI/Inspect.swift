import ArgumentParser
import Foundation
@_spi(Kernels) @_spi(Benchmarking) @_spi(Files) import Topiary

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a model file stores each layer and what its bytes pay for.",
        discussion: """
        Per layer: shape, encoding (dense, masked or csr), value and index types, kept and non-zero \
        weights, sparsity and bytes. For the file: its bytes, the ratio to the same model saved \
        dense, and the cost per non-zero weight against the 4 bytes of its value alone (the rest is \
        index: mask bits, or CSR column indices and row offsets; biases; header). The file is \
        validated as `topiary eval` would load it.
        """
    )

    @Argument(help: "The model file (safetensors).")
    var file: String

    @Flag(help: "Print one JSON object on standard output.")
    var json = false

    func run() throws {
        let summary = try Model.summary(ofFile: file)
        if json { return try printJSON(summary) }
        print(describe(summary))
    }
}

/// A number with thousands separators: `1,067,480`.
func grouped(_ n: Int) -> String {
    let digits = String(abs(n))
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

/// The text report of `topiary inspect`: a table of the layers, then the file's sizes.
func describe(_ s: ModelFileSummary) -> String {
    func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + fill : fill + text
    }
    let rows = s.layers.map { l in
        [String(l.index), "\(l.output)x\(l.input)", l.encoding, l.values, l.index_kind,
         "\(grouped(l.kept))/\(grouped(l.weights))", grouped(l.nonzeros), percent(l.sparsity), grouped(l.bytes)]
    }
    let header = ["layer", "shape", "encoding", "values", "index", "kept/weights", "non-zeros", "sparsity", "bytes"]
    let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { c, text in pad(text, widths[c], left: c < 5) }.joined(separator: "  ")
    }
    var lines = ["\(s.path): Topiary model, format version \(s.format_version), \(s.architecture)", line(header)]
    lines += rows.map(line)
    lines.append("file: \(grouped(s.bytes)) bytes, \(percent(s.ratio_to_dense)) of the same model saved dense (\(grouped(s.dense_bytes)) bytes)")
    let n = Double(max(1, s.nonzero_weights))
    lines.append(String(format: "by non-zero count: %@ non-zero weights, %.2f bytes each (its value alone: 4; index %.2f, biases %.2f, header %.2f), %.2f× their values",
                        grouped(s.nonzero_weights), s.bytes_per_nonzero, Double(s.index_bytes) / n, Double(s.bias_bytes) / n,
                        Double(s.header_bytes) / n, s.ratio_to_nonzero_values))
    return lines.joined(separator: "\n")
}
