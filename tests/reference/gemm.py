"""GEMM reference: C = alpha * op(A) @ op(B) + beta * C, in float64."""
import numpy as np


def gemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """Returns alpha * op(a) @ op(b) + beta * c as a new float64 array.

    op(x) is x.T when trans_x is set. Without ``c``, or when beta is 0, C is
    not read (it may hold NaN), as BLAS and fastnn define it.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    out = alpha * (op_a @ op_b)
    if c is not None and beta != 0:
        out = out + beta * np.asarray(c, dtype=np.float64)
    return out


def gemm_error_scale(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """An element-wise scale for the rounding error of a float32 GEMM.

    The rounding error of a length-K dot product is bounded by a multiple of
    sum_k |a_ik| |b_kj|, which Cauchy-Schwarz bounds by |row i of op(a)| *
    |column j of op(b)|; scaled by |alpha|, plus |beta * c| for the update.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    rows = np.sqrt((op_a * op_a).sum(axis=1))
    cols = np.sqrt((op_b * op_b).sum(axis=0))
    scale = abs(alpha) * np.outer(rows, cols)
    if c is not None and beta != 0:
        scale = scale + abs(beta) * np.abs(np.asarray(c, dtype=np.float64))
    return scale


EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)  # flush-to-zero may drop denormals


def gemm_tolerance(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """The element-wise error a float32 GEMM may make: eps32 * (4 + 2 sqrt(K))
    times gemm_error_scale, plus the smallest normal float32.

    Rounding errors of a length-K sum grow like sqrt(K) when they are
    independent, as on the random operands of the tests, rather than like
    the worst case K; 4 + 2 sqrt(K) leaves room for any summation order
    (blocked, vectorised, split over threads) and the alpha and beta
    updates. A statistical bound for random data, then: operands built to
    make the rounding errors add up could exceed it.
    """
    k = np.asarray(a).shape[0 if trans_a else 1]
    scale = gemm_error_scale(a, b, trans_a, trans_b, alpha, beta, c)
    return EPS32 * (4.0 + 2.0 * np.sqrt(k)) * scale + TINY32


def assert_gemm_close(out, a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """Asserts that `out` is a float32 array holding alpha * op(a) @ op(b) + beta * c
    within gemm_tolerance of the float64 reference, NaN counting as wrong.

    `c` is C as it was before the call (None when none was given, or when
    beta is 0 and C must not be read). The one check of a GEMM result for the
    CPU and the CUDA tests alike."""
    want = gemm(a, b, trans_a, trans_b, alpha, beta, c)
    assert isinstance(out, np.ndarray), f"result is {type(out).__name__}, want numpy.ndarray"
    assert out.dtype == np.float32, f"result dtype {out.dtype}, want float32"
    assert out.shape == want.shape, f"result shape {out.shape}, want {want.shape}"
    if out.size == 0:
        return
    tol = gemm_tolerance(a, b, trans_a, trans_b, alpha, beta, c)
    err = np.abs(out.astype(np.float64) - want)
    bad = ~(err <= tol)  # NaN counts as bad
    if bad.any():
        i, j = np.unravel_index(np.argmax(np.where(bad, err / tol, -1)), out.shape)
        k = np.asarray(a).shape[0 if trans_a else 1]
        raise AssertionError(
            f"{int(bad.sum())} of {out.size} elements of C{out.shape} (K={k}, "
            f"trans_a={trans_a}, trans_b={trans_b}, alpha={alpha}, beta={beta}) are off; "
            f"worst at [{i}, {j}]: got {out[i, j]!r}, want {want[i, j]!r}, "
            f"error {err[i, j]:.3g} > tolerance {tol[i, j]:.3g}")
