/// Fixed-point text for the inference plan's report and the benchmarks' tables, without Foundation.
///
/// Not API (`@_spi(Benchmarking)`): shared so that both print numbers alike.
@_spi(Benchmarking) public enum InferenceSupport {
    /// `value` with exactly `digits` decimals.
    public static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e15 else { return "\(value)" }
        let n = Int(scaled)
        let whole = n / Int(scale), frac = n % Int(scale)
        var f = "\(frac)"
        if f.count < digits { f = String(repeating: "0", count: digits - f.count) + f }
        return (value < 0 && n != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + f : "")
    }

    /// `text` padded with spaces to `width` (and one space after it when longer).
    public static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
