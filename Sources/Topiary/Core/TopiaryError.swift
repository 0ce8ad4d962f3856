import Foundation

/// An error caused by input that a user controls: files, data, options, the shapes of layers and
/// batches.
///
/// The ``message`` names what went wrong and where (the file, the layer and its sizes, the
/// option); it is also the error's `localizedDescription`.
///
/// ```swift
/// do {
///     _ = try Chain(Dense(784 => 300, .relu, seed: 1), Dense(100 => 10, seed: 2))
/// } catch let error as TopiaryError {
///     print(error.kind, error.message)   // invalidShape Chain: layer 1 Dense(100 => 10) expects 100 inputs, …
/// }
/// ```
public struct TopiaryError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem this is.
    public enum Kind: Sendable {
        /// A file or folder does not exist or cannot be read.
        case fileNotFound
        /// A file exists but its content is not what was expected (bad magic, truncated, malformed header).
        case corruptFile
        /// A shape or size does not fit (mismatched tensors, absurd sizes refused before allocating).
        case invalidShape
        /// An option or argument is out of range or inconsistent.
        case invalidOption
        /// Data contains NaN or infinity, or training diverged.
        case nonFinite
        /// Writing a file failed.
        case writeFailed
    }

    /// What kind of problem this is.
    public let kind: Kind
    /// A sentence a user can act on.
    public let message: String

    /// Creates an error of `kind` with a readable `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

extension TopiaryError: LocalizedError {
    /// The message, so that `localizedDescription` reads as the message.
    public var errorDescription: String? { message }
}
