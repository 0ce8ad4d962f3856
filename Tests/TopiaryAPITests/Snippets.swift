import Foundation

/// The Swift code blocks of the README, the DocC articles and the DocC comments of the library's
/// sources, each wrapped in a function of its own after a prelude of the names they assume.
enum Snippets {
    /// The package's root folder.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A code block and where it comes from.
    struct Block {
        var file: String
        var line: Int
        var code: String
    }

    /// Every ```swift block of the README, the DocC articles, and the `///` comments of `Sources/Topiary`.
    static func all() throws -> [Block] {
        var blocks: [Block] = []
        let readme = root.appendingPathComponent("README.md")
        blocks += try markdownBlocks(in: readme, prefix: "")
        let fm = FileManager.default
        let docc = root.appendingPathComponent("Sources/Topiary/Documentation.docc")
        for name in try fm.contentsOfDirectory(atPath: docc.path).sorted() where name.hasSuffix(".md") {
            blocks += try markdownBlocks(in: docc.appendingPathComponent(name), prefix: "")
        }
        let sources = root.appendingPathComponent("Sources/Topiary")
        let files = fm.enumerator(atPath: sources.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.sorted() ?? []
        // Types behind an SPI (`@_spi(Kernels) public enum BLAS`): their extensions are not public API.
        var spiTypes: Set<String> = []
        for name in files {
            let text = try String(contentsOf: sources.appendingPathComponent(name), encoding: .utf8)
            for line in text.components(separatedBy: "\n") where line.hasPrefix("@_spi(") {
                let words = line.split(separator: " ")
                if let kind = words.firstIndex(where: { ["enum", "struct", "class", "protocol"].contains($0) }), kind + 1 < words.count {
                    spiTypes.insert(String(words[kind + 1].prefix { $0.isLetter || $0.isNumber || $0 == "_" }))
                }
            }
        }
        for name in files {
            // Only public declarations' comments are documentation a user reads.
            let url = sources.appendingPathComponent(name)
            // Types behind an SPI (`@_spi(Kernels) public struct …`) are not the public API either.
            let text = try String(contentsOf: url, encoding: .utf8)
            let lines = text.components(separatedBy: "\n")
            guard lines.contains(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("public ") }) else { continue }
            let topLevel = lines.filter { !$0.hasPrefix(" ") && $0.contains("public ") && !$0.hasPrefix("///") && !$0.hasPrefix("extension") }
            guard topLevel.isEmpty || topLevel.contains(where: { !$0.contains("@_spi") }) else { continue }
            let extensions = lines.filter { $0.hasPrefix("extension ") }.map { String($0.dropFirst(10).prefix { $0.isLetter || $0.isNumber || $0 == "_" }) }
            guard !(topLevel.isEmpty && !extensions.isEmpty && extensions.allSatisfy(spiTypes.contains)) else { continue }
            blocks += try markdownBlocks(in: url, prefix: "///")
        }
        return blocks
    }

    /// The ```swift blocks of a file whose lines start with `prefix` (after indentation).
    static func markdownBlocks(in url: URL, prefix: String) throws -> [Block] {
        let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
        var blocks: [Block] = []
        var current: [String]?
        var start = 0
        for (i, raw) in lines.enumerated() {
            var line = Substring(raw.drop { $0 == " " })
            if !prefix.isEmpty {
                guard line.hasPrefix(prefix) else { current = nil; continue }
                line = line.dropFirst(prefix.count)
                if line.hasPrefix(" ") { line = line.dropFirst() }
            } else {
                line = Substring(raw)
            }
            if current == nil, line.trimmingCharacters(in: .whitespaces) == "```swift" {
                current = []
                start = i + 2
            } else if current != nil, line.trimmingCharacters(in: .whitespaces) == "```" {
                blocks.append(Block(file: url.path.replacingOccurrences(of: root.path + "/", with: ""), line: start,
                                    code: current!.joined(separator: "\n")))
                current = nil
            } else if current != nil {
                current!.append(String(line))
            }
        }
        return blocks
    }

    /// A program that holds every block in a function of its own, after `prelude`.
    /// A block that declares types or extensions is placed at file scope, any other inside a function.
    static func program(_ blocks: [Block], prelude: String) -> String {
        var text = prelude + "\n"
        let declarations = ["struct ", "final class ", "class ", "extension ", "enum "]
        for (n, b) in blocks.enumerated() {
            let lines = b.code.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("import ") }
            let code = lines.joined(separator: "\n")
            let atFileScope = lines.contains { line in declarations.contains { line.hasPrefix($0) } }
            text += atFileScope ? "// \(b.file):\(b.line)\n\(code)\n"
                : "// \(b.file):\(b.line)\nfunc snippet\(n)() throws {\n\(code)\n}\n"
        }
        return text
    }
}
