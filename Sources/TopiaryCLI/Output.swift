import Foundation
@_spi(Kernels) @_spi(Benchmarking) import Topiary

/// Writes a value as one JSON object on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let data = try encoder.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// An optional report field that encodes `nil` as JSON `null` (synthesized `Encodable` would
/// leave the key out): `--json` keeps every key, and a figure that does not exist, such as the
/// validation accuracy with `--validation 0`, is `null` rather than a misleading 0.
@propertyWrapper
struct NullWhenNil<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

/// A validation figure for the text output: a percentage, or "n/a" without a validation split.
func percentOrNotApplicable(_ fraction: Double?) -> String { fraction.map(percent) ?? "n/a" }

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// A percentage with two decimals: `88.62%`.
func percent(_ fraction: Double) -> String { String(format: "%.2f%%", 100 * fraction) }

/// A progress bar on standard error, drawn only when standard error is a terminal and output is not JSON.
final class ProgressBar {
    private let enabled: Bool
    private var lastDraw = 0.0
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant

    init(enabled: Bool) {
        self.enabled = enabled && isatty(STDERR_FILENO) != 0
        start = clock.now
    }

    /// Draws `label [#####.....] done/total  ETA  detail`, at most 20 times a second.
    func update(_ label: String, done: Int, total: Int, elapsed: Double, detail: String) {
        guard enabled else { return }
        let now = (clock.now - start).seconds
        guard done == total || now - lastDraw >= 0.05 else { return }
        lastDraw = now
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let eta = done == 0 ? 0 : elapsed / Double(done) * Double(total - done)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ [%@] %d/%d  ETA %4.1fs  %@\u{1B}[K",
                                                   label, bar, done, total, eta, detail).utf8))
    }

    /// Clears the bar's line.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// Where a command's lines and progress go: the terminal for a command run by itself, the step
/// list of `topiary run` (and its log file) for a command run as a step of a study.
protocol CommandOutput: AnyObject {
    /// A line of text output (not in JSON mode).
    func say(_ line: String)
    /// Progress of the current phase; `fraction`, when known, of the whole command.
    func progress(_ label: String, done: Int, total: Int, elapsed: Double, detail: String, fraction: Double?)
    /// The current phase is over: clear its progress.
    func endProgress()
}

extension CommandOutput {
    /// Progress of the current phase.
    func progress(_ label: String, done: Int, total: Int, elapsed: Double, detail: String) {
        progress(label, done: done, total: total, elapsed: elapsed, detail: detail, fraction: nil)
    }
}

/// A command run by itself: lines on standard output (none with `--json`), a progress bar on a
/// terminal's standard error.
final class ConsoleOutput: CommandOutput {
    private let json: Bool
    private let bar: ProgressBar

    init(json: Bool) {
        self.json = json
        bar = ProgressBar(enabled: !json)
    }

    func say(_ line: String) {
        guard !json else { return }
        print(line)
        fflush(stdout)
    }

    func progress(_ label: String, done: Int, total: Int, elapsed: Double, detail: String, fraction: Double?) {
        bar.update(label, done: done, total: total, elapsed: elapsed, detail: detail)
    }

    func endProgress() { bar.finish() }
}
