"""Comparison helpers shared by the tests (plain NumPy, no fastnn)."""
import numpy as np


def assert_within(actual, want, tol, what="result", dtype=None):
    """|actual - want| <= tol element-wise (tol an array or a number), shapes
    equal, NaN counting as wrong; with dtype, actual must be an ndarray of it.
    The message names the worst element."""
    if dtype is not None:
        assert isinstance(actual, np.ndarray), f"{what}: {type(actual).__name__}, want ndarray"
        assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, want {np.dtype(dtype)}"
    actual = np.asarray(actual)
    want = np.asarray(want, dtype=np.float64)
    assert actual.shape == want.shape, f"{what}: shape {actual.shape}, want {want.shape}"
    if actual.size == 0:
        return
    err = np.abs(actual.astype(np.float64) - want)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), err.shape)
    bad = ~(err <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(tol, 1e-300), -1.0)),
                             err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.size} elements are off; worst at {i}: got "
            f"{actual[i]!r}, want {want[i]!r}, error {err[i]:.3g} > tolerance {tol[i]:.3g}")
