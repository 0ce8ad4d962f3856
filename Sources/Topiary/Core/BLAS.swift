import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// The thin wrapper over OpenBLAS: every dense product in Topiary goes through here.
///
/// This is the only file that calls CBLAS. All matrices are row-major `Float`.
@_spi(Kernels) public enum BLAS {
    /// Whether an operand is used as stored or transposed.
    public enum Transpose: Sendable {
        /// Use the operand as stored.
        case none
        /// Use the operand's transpose.
        case transpose

        @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    /// The number of threads OpenBLAS uses; a value set is kept within `1...Threads.processors`
    /// (OpenBLAS caps `OPENBLAS_NUM_THREADS` at the processors but not `openblas_set_num_threads`).
    ///
    /// The corresponding C functions are `openblas_get_num_threads` and `openblas_set_num_threads`.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(Threads.usable(newValue))) }
    }

    /// OpenBLAS's build configuration and the core its kernels were chosen for, e.g.
    /// `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64 (core Zen)`.
    ///
    /// The corresponding C functions are `openblas_get_config` and `openblas_get_corename`.
    public static var configuration: String {
        let config = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        let core = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
        return "\(config.trimmingCharacters(in: .whitespaces)) (core \(core))"
    }

    /// OpenBLAS's build configuration as it reports it, e.g.
    /// `OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64`.
    ///
    /// The corresponding C function is `openblas_get_config`.
    public static var buildConfiguration: String {
        (openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS").trimmingCharacters(in: .whitespaces)
    }

    /// The core whose kernels OpenBLAS runs in this process, e.g. `Cooperlake`, `Haswell` or, on a
    /// CPU the library does not know, the generic `Prescott` (see ``coreTypeVariable``).
    ///
    /// The corresponding C function is `openblas_get_corename`.
    public static var coreName: String {
        openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }

    /// How OpenBLAS runs its threads: `pthreads`, `OpenMP` or `sequential`.
    ///
    /// The corresponding C function is `openblas_get_parallel`.
    public static var threading: String {
        switch openblas_get_parallel() {
        case 0: "sequential"
        case 2: "OpenMP"
        default: "pthreads"
        }
    }

    /// Whether the loaded OpenBLAS carries the kernels of `core` (an OpenBLAS core name such as
    /// `SkylakeX`): a DYNAMIC_ARCH build exports one `gotoblas_CORE` table per core it supports.
    static func carriesKernels(of core: String) -> Bool {
        #if canImport(Glibc)
        // A null handle is RTLD_DEFAULT: OpenBLAS is a dependency of the process, so in its global scope.
        return dlsym(nil, "gotoblas_" + core.uppercased()) != nil
        #else
        return false
        #endif
    }

    /// Runs one two-thread `sgemm` (300×784 by 784×128, about 1 ms) before the process's first
    /// `sgemm` (``gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``; `sgemv` is not affected).
    ///
    /// OpenBLAS 0.3.21 (Debian, pthreads) runs single-thread `sgemm` 2–3× slower in a process
    /// that has never run a threaded one: on the development machine, 300×784·784×128 took 3.2 ms
    /// and the training forward product 128×784·(300×784)ᵀ 4.7 ms before, 1.6 and 1.7 ms after a
    /// single two-thread call of the first product (a plain C program linking `-lopenblas`, same
    /// results; a 128³ product, too small to be threaded, changed nothing). Skipped when OpenBLAS
    /// sees a single CPU.
    @usableFromInline static let prepared: Void = {
        guard openblas_get_num_procs() > 1 else { return }
        let (m, n, k) = (300, 128, 784)
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.5, count: k * n)
        var c = [Float](repeating: 0, count: m * n)
        let saved = openblas_get_num_threads()
        openblas_set_num_threads(2)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                                pa.baseAddress, Int32(k), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                }
            }
        }
        openblas_set_num_threads(saved)
    }()

    /// `C ← alpha · op(A) · op(B) + beta · C` on raw row-major buffers.
    ///
    /// `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`. `lda`, `ldb`, `ldc` are the row
    /// strides of the stored matrices (the stored column count when dense). Not API
    /// (`@_spi(Kernels)`): raw buffers are for the layers and the benchmarks; users call ``matmul(_:_:_:_:alpha:)``.
    ///
    /// The corresponding C function is `cblas_sgemm`.
    @_spi(Kernels) @inlinable
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        _ = prepared
        cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }

    /// `y ← alpha · op(A) · x + beta · y` on a raw row-major `rows × columns` buffer `A`.
    ///
    /// Not API (`@_spi(Kernels)`), like ``gemm(_:_:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
    ///
    /// The corresponding C function is `cblas_sgemv`.
    @_spi(Kernels) @inlinable
    public static func gemv(
        _ trans: Transpose, rows: Int, columns: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, incX: Int = 1,
        beta: Float = 0,
        y: UnsafeMutablePointer<Float>, incY: Int = 1
    ) {
        guard rows > 0, columns > 0 else { return }
        cblas_sgemv(CblasRowMajor, trans.cblas, Int32(rows), Int32(columns), alpha, a, Int32(lda),
                    x, Int32(incX), beta, y, Int32(incY))
    }

    /// Returns `alpha · op(A) · op(B)` for matrices.
    ///
    /// - Precondition: the inner dimensions agree.
    public static func matmul(_ a: Matrix, _ transA: Transpose = .none,
                              _ b: Matrix, _ transB: Transpose = .none,
                              alpha: Float = 1) -> Matrix {
        let m = transA == .none ? a.rows : a.columns
        let k = transA == .none ? a.columns : a.rows
        let kb = transB == .none ? b.rows : b.columns
        let n = transB == .none ? b.columns : b.rows
        require(k == kb, "BLAS.matmul: inner dimensions differ (\(k) and \(kb))")
        var c = Matrix(rows: m, columns: n)
        if k == 0 { return c }
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                c.storage.withUnsafeMutableBufferPointer { pc in
                    gemm(transA, transB, m: m, n: n, k: k, alpha: alpha,
                         a: pa.baseAddress!, lda: max(1, a.columns),
                         b: pb.baseAddress!, ldb: max(1, b.columns),
                         c: pc.baseAddress!, ldc: max(1, n))
                }
            }
        }
        return c
    }

    // MARK: Rank-1 updates, Gram matrices and Cholesky (LAPACKE)

    /// `A ← alpha · x · yᵀ + A` on a raw row-major `rows × columns` buffer (`cblas_sger`).
    static func ger(rows: Int, columns: Int, alpha: Float,
                    x: UnsafePointer<Float>, incX: Int = 1, y: UnsafePointer<Float>, incY: Int = 1,
                    a: UnsafeMutablePointer<Float>, lda: Int) {
        guard rows > 0, columns > 0 else { return }
        cblas_sger(CblasRowMajor, Int32(rows), Int32(columns), alpha, x, Int32(incX), y, Int32(incY), a, Int32(lda))
    }

    /// `alpha · Xᵀ·X` for `X` `[n, d]`, the full symmetric `d × d` matrix (`cblas_ssyrk` on the
    /// upper triangle, mirrored).
    static func gram(_ x: Matrix, alpha: Float = 1) -> Matrix {
        let (n, d) = (x.rows, x.columns)
        var c = Matrix(rows: d, columns: d)
        guard n > 0, d > 0 else { return c }
        x.storage.withUnsafeBufferPointer { px in
            c.storage.withUnsafeMutableBufferPointer { pc in
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(n), alpha,
                            px.baseAddress, Int32(d), 0, pc.baseAddress, Int32(d))
            }
        }
        c.mirrorUpper()
        return c
    }

    /// The Cholesky factor of a symmetric positive-definite matrix (`LAPACKE_spotrf`): upper `U`
    /// with `A = Uᵀ·U`, or lower `L` with `A = L·Lᵀ`; the other triangle is zero.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` for a non-square matrix,
    ///   ``TopiaryError/Kind/nonFinite`` for NaN or infinite entries,
    ///   ``TopiaryError/Kind/invalidOption`` when the matrix is not positive definite (LAPACK's
    ///   `info > 0`: the leading minor of that order is not positive), or LAPACK rejects an argument.
    static func cholesky(_ a: Matrix, upper: Bool = true) throws -> Matrix {
        var f = a
        try potrf(&f, upper: upper, what: "Cholesky factorisation")
        for r in 0..<f.rows {
            for c in 0..<f.columns where upper ? c < r : c > r { f.storage[r * f.columns + c] = 0 }
        }
        return f
    }

    /// The inverse of a symmetric positive-definite matrix from its Cholesky factor
    /// (`LAPACKE_spotrf`, then `LAPACKE_spotri`), full and symmetric.
    ///
    /// - Throws: as ``cholesky(_:upper:)``; also when the inverse holds non-finite values.
    static func inverseSPD(_ a: Matrix) throws -> Matrix {
        var f = a
        try potrf(&f, upper: true, what: "inverse")
        let n = f.rows
        let info = f.storage.withUnsafeMutableBufferPointer { p in
            LAPACKE_spotri(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "U")), Int32(n), p.baseAddress, Int32(n))
        }
        try check(info, routine: "spotri", what: "inverse", n: n)
        f.mirrorUpper()
        guard f.storage.allSatisfy(\.isFinite) else {
            throw TopiaryError(.nonFinite, "inverse of a \(n)×\(n) matrix: the result is not finite (the matrix is too close to singular; add dampening)")
        }
        return f
    }

    /// Solves `A·X = B` from the upper Cholesky factor `U` of `A` (`A = Uᵀ·U`, as
    /// ``cholesky(_:upper:)`` returns it) and `B` `[n, m]` (`LAPACKE_spotrs`), for many right-hand
    /// sides against one factorisation.
    ///
    /// - Throws: ``TopiaryError/Kind/invalidShape`` when the shapes disagree,
    ///   ``TopiaryError/Kind/nonFinite`` for a non-finite solution, or LAPACK's `info`.
    static func solveFactored(_ u: Matrix, _ b: Matrix) throws -> Matrix {
        guard u.rows == u.columns, b.rows == u.rows else {
            throw TopiaryError(.invalidShape, "least squares: the right-hand side has \(b.rows) rows, the factor is \(u.rows)×\(u.columns)")
        }
        var x = b
        let (n, m) = (u.rows, b.columns)
        guard n > 0, m > 0 else { return x }
        let info = u.storage.withUnsafeBufferPointer { pa in
            x.storage.withUnsafeMutableBufferPointer { px in
                LAPACKE_spotrs(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "U")), Int32(n), Int32(m), pa.baseAddress, Int32(n), px.baseAddress, Int32(m))
            }
        }
        try check(info, routine: "spotrs", what: "least squares", n: n)
        guard x.storage.allSatisfy(\.isFinite) else {
            throw TopiaryError(.nonFinite, "least squares: the solution is not finite (the system is too close to singular; add dampening)")
        }
        return x
    }

    /// Solves `A·X = B` for a symmetric positive-definite `A` `[n, n]` and `B` `[n, m]`
    /// (`LAPACKE_spotrf`, then `LAPACKE_spotrs`).
    ///
    /// - Throws: as ``cholesky(_:upper:)``; ``TopiaryError/Kind/invalidShape`` when `B` has not `n` rows.
    static func solveSPD(_ a: Matrix, _ b: Matrix) throws -> Matrix {
        guard b.rows == a.rows else {
            throw TopiaryError(.invalidShape, "least squares: the right-hand side has \(b.rows) rows, the matrix \(a.rows)")
        }
        var f = a
        try potrf(&f, upper: true, what: "least squares")
        return try solveFactored(f, b)
    }

    /// Factors `a` in place with `LAPACKE_spotrf`, checking the shape, the entries and `info`.
    private static func potrf(_ a: inout Matrix, upper: Bool, what: String) throws {
        let n = a.rows
        guard a.columns == n else {
            throw TopiaryError(.invalidShape, "\(what): expected a square matrix, got \(a.rows)×\(a.columns)")
        }
        guard n > 0 else { return }
        guard a.storage.allSatisfy(\.isFinite) else {
            throw TopiaryError(.nonFinite, "\(what): the \(n)×\(n) matrix has NaN or infinite entries")
        }
        let uplo = Int8(UInt8(ascii: upper ? "U" : "L"))
        let info = a.storage.withUnsafeMutableBufferPointer { p in
            LAPACKE_spotrf(LAPACK_ROW_MAJOR, uplo, Int32(n), p.baseAddress, Int32(n))
        }
        try check(info, routine: "spotrf", what: what, n: n)
    }

    /// Turns a LAPACK `info` code into a ``TopiaryError``.
    private static func check(_ info: Int32, routine: String, what: String, n: Int) throws {
        if info == 0 { return }
        if info < 0 {
            throw TopiaryError(.invalidOption, "\(what): LAPACK \(routine) rejected argument \(-info) (n = \(n))")
        }
        throw TopiaryError(.invalidOption, "\(what): the \(n)×\(n) matrix is singular or not positive definite (LAPACK \(routine) info \(info): the leading minor of order \(info) is not positive); add dampening")
    }
}

extension Matrix {
    /// Copies the upper triangle of a square matrix onto the lower one.
    mutating func mirrorUpper() {
        let n = rows
        storage.withUnsafeMutableBufferPointer { p in
            for r in 1..<max(1, n) { for c in 0..<r { p[r * n + c] = p[c * n + r] } }
        }
    }
}
