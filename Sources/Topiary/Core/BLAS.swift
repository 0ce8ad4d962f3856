import CBLAS

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

    /// The number of threads OpenBLAS uses.
    ///
    /// The corresponding C functions are `openblas_get_num_threads` and `openblas_set_num_threads`.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
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
}
