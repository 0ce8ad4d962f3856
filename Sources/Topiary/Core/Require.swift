/// Stops the program with `message` unless `condition` holds: a `precondition` whose message
/// survives release builds (Swift drops `precondition` texts under `-O`). For programmer errors
/// only (an index out of range, a broken internal invariant); whatever a user's data, files,
/// options or hand-built network can get wrong throws a ``TopiaryError`` instead.
@inlinable @inline(__always)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
