@_spi(Fuzzing) import Topiary

/// Runs one fuzzing input through `reader`: a thrown `TopiaryError` is the reader refusing bad
/// input, which is fine; any other error (a `Fuzzing.Violation`, a check on the result that
/// failed) ends the process with a trap, which libFuzzer reports as a finding and saves the
/// input. Crashes, sanitizer reports, timeouts and allocations past the limits are findings of
/// libFuzzer itself.
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int, _ reader: ([UInt8]) throws -> Void) -> Int32 {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    do {
        try reader(bytes)
    } catch is TopiaryError {
        // Refused with a typed error: what the readers promise for bad input.
    } catch {
        fatalError("fuzzing finding: the reader threw \(type(of: error)), not a TopiaryError: \(error)")
    }
    return 0
}
