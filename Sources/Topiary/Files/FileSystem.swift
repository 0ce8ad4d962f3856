#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Not API: the POSIX calls Topiary's file code makes (`stat`, `open`, `read`, `write`, `fsync`,
/// `rename`, `unlink`), each turned into a ``TopiaryError`` that names the file.
enum FileSystem {
    /// What `stat` says about a path.
    enum Status {
        case missing
        case directory
        case file(size: Int)
        case other
    }

    /// The status of `path` (following symbolic links).
    ///
    /// The corresponding C function is `stat`.
    static func status(_ path: String) -> Status {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file(size: Int(info.st_size))
        default: return .other
        }
    }

    /// Whether a regular file exists at `path`.
    static func isFile(_ path: String) -> Bool {
        if case .file = status(path) { return true }
        return false
    }

    /// The size of the regular file at `path`, or a `fileNotFound` error naming it.
    static func fileSize(_ path: String) throws -> Int {
        switch status(path) {
        case .file(let size): return size
        case .missing: throw TopiaryError(.fileNotFound, "\(path): no such file")
        case .directory: throw TopiaryError(.fileNotFound, "\(path): is a folder, expected a file")
        case .other: throw TopiaryError(.fileNotFound, "\(path): not a regular file")
        }
    }

    /// Reads the whole regular file at `path`, refusing files larger than `maximumSize` bytes.
    ///
    /// The corresponding C functions are `open`, `fstat` and `read`.
    static func readFile(_ path: String, maximumSize: Int) throws -> [UInt8] {
        let size = try fileSize(path)
        guard size <= maximumSize else {
            throw TopiaryError(.invalidShape, "\(path): file has \(size) bytes, more than the limit of \(maximumSize)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw TopiaryError(.fileNotFound, "\(path): cannot be opened (\(errorString()))")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        var failure: String?
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while done < size {
                let n = read(fd, base + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errorString()
                    return
                }
                if n == 0 { break }
                done += n
            }
        }
        if let failure { throw TopiaryError(.corruptFile, "\(path): read failed (\(failure))") }
        guard done == size else {
            throw TopiaryError(.corruptFile, "\(path): file shrank while reading (\(done) of \(size) bytes)")
        }
        return bytes
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same folder is written,
    /// flushed to disk and renamed over `path`, so an interrupted save never destroys a good file.
    ///
    /// The corresponding C functions are `open`, `write`, `fsync`, `rename` and `unlink`.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let (folder, name) = split(path)
        guard !name.isEmpty else { throw TopiaryError(.writeFailed, "\(path): not a file name") }
        var rng = SystemRandomNumberGenerator()
        let suffix = String(rng.next() & 0xFFFF_FFFF, radix: 16)
        let temporary = (folder.isEmpty ? "" : folder + "/") + ".\(name).tmp-\(getpid())-\(suffix)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TopiaryError(.writeFailed, "\(path): cannot create a temporary file in '\(folder.isEmpty ? "." : folder)' (\(errorString()))")
        }
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count, let base = buffer.baseAddress {
                let n = write(fd, base + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = "write: \(errorString())"
                    return
                }
                done += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = "fsync: \(errorString())" }
        if close(fd) != 0, failure == nil { failure = "close: \(errorString())" }
        if failure == nil, rename(temporary, path) != 0 { failure = "rename: \(errorString())" }
        if let failure {
            unlink(temporary)
            throw TopiaryError(.writeFailed, "\(path): cannot be written (\(failure))")
        }
        // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
        let dir = open(folder.isEmpty ? "." : folder, O_RDONLY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// Creates the folder `path` (and missing parents); an existing folder is fine.
    ///
    /// The corresponding C function is `mkdir`.
    static func createDirectory(_ path: String) throws {
        if case .directory = status(path) { return }
        let (parent, _) = split(path)
        if !parent.isEmpty, parent != "/", parent != path { try createDirectory(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw TopiaryError(.writeFailed, "\(path): cannot create the folder (\(errorString()))")
        }
        guard case .directory = status(path) else {
            throw TopiaryError(.writeFailed, "\(path): exists and is not a folder")
        }
    }

    /// Removes the file at `path` if it exists; failures are ignored (the caller only tidies up).
    ///
    /// The corresponding C function is `unlink`.
    /// The names in the folder `path` (none when it cannot be read).
    ///
    /// The corresponding C functions are `opendir`, `readdir` and `closedir`.
    static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    static func removeFile(_ path: String) {
        _ = unlink(path)
    }

    /// Splits a path into its folder (`""` for the current one) and its last component.
    static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    /// Joins a folder and a file name.
    static func join(_ folder: String, _ name: String) -> String {
        if folder.isEmpty { return name }
        return folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// The message for the current `errno`.
    static func errorString() -> String {
        String(cString: strerror(errno))
    }
}

/// Not API: writes `bytes` to `path` as ``Model/save(to:)`` does (a temporary file in the same
/// folder, `fsync`, `rename`, `fsync` of the folder), for the command-line tool's reports.
@_spi(Files) public func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    try FileSystem.writeAtomically(bytes, to: path)
}
