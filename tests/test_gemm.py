"""fastnn.kernels.gemm against the float64 reference, on every SIMD path.

C = alpha * op(A) @ op(B) + beta * C in float32. The tolerance is the
rounding error a float32 GEMM may make: relative to the Cauchy-Schwarz bound
|row of op(A)| * |column of op(B)| of each dot product (plus |beta * C|),
times eps32 * (4 + 2 sqrt(K)). Correct results on the random data here land
20x or more below it; leaving out a single term of the sum fails it at every
K used here (up to 10000).
"""
import itertools
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import _C
from fastnn.kernels import gemm
from reference import gemm as ref

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)  # flush-to-zero may drop denormals
SUPPORTED_ISAS = tuple(_C.supported_isas())
BEST_ISA = SUPPORTED_ISAS[-1]
TRANSPOSES = list(itertools.product([False, True], repeat=2))
TRANS_IDS = ["NN", "NT", "TN", "TT"]


# ----------------------------------------------------------------- helpers

def operands(m, k, n, trans_a=False, trans_b=False, seed=0, c=False):
    """Random float32 a, b (stored as the transpose flags say) and c."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    if not c:
        return a, b
    return a, b, rng.standard_normal((m, n), dtype=np.float32)


def assert_gemm_close(out, a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """Checks a float32 GEMM result against the float64 reference.

    `c` is C as it was before the call (None when none was given)."""
    want = ref.gemm(a, b, trans_a, trans_b, alpha, beta, c)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32, f"result dtype {out.dtype}, want float32"
    assert out.shape == want.shape, f"result shape {out.shape}, want {want.shape}"
    if out.size == 0:
        return
    k = np.asarray(a).shape[0 if trans_a else 1]
    scale = ref.gemm_error_scale(a, b, trans_a, trans_b, alpha, beta, c)
    tol = EPS32 * (4.0 + 2.0 * np.sqrt(k)) * scale + TINY32
    err = np.abs(out.astype(np.float64) - want)
    bad = ~(err <= tol)  # NaN counts as bad
    if bad.any():
        i, j = np.unravel_index(np.argmax(np.where(bad, err / tol, -1)), out.shape)
        raise AssertionError(
            f"{int(bad.sum())} of {out.size} elements of C{out.shape} (K={k}) are off; "
            f"worst at [{i}, {j}]: got {out[i, j]!r}, want {want[i, j]!r}, "
            f"error {err[i, j]:.3g} > tolerance {tol[i, j]:.3g}; isa={_C.get_isa()}, "
            f"threads={fastnn.get_num_threads()}")


def check(m, k, n, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, seed=0):
    """Runs gemm on random operands (with a c when beta != 0) and checks it."""
    if beta == 0.0:
        a, b = operands(m, k, n, trans_a, trans_b, seed)
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha)
        assert_gemm_close(out, a, b, trans_a, trans_b, alpha)
        return out
    a, b, c = operands(m, k, n, trans_a, trans_b, seed, c=True)
    c0 = c.copy()
    out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    assert out is c
    assert_gemm_close(out, a, b, trans_a, trans_b, alpha, beta, c0)
    return out


# Layouts an input may come in; each keeps the values of x (as float32 data,
# or converted to another dtype, where the reference sees the converted values).
def _embed(x, shape, index):
    y = np.full(shape, np.nan, dtype=x.dtype)
    y[index] = x
    return y[index]


def _misaligned(x):
    buf = bytearray(x.nbytes + 1)
    y = np.frombuffer(buf, dtype=np.float32, offset=1, count=x.size).reshape(x.shape)
    y[...] = x
    assert not y.flags.aligned
    return y


def _readonly(x):
    y = x.copy()
    y.flags.writeable = False
    return y


LAYOUTS = {
    "c_order": lambda x: x,
    "fortran": np.asfortranarray,
    "transposed_view": lambda x: np.ascontiguousarray(x.T).T,
    "row_padding": lambda x: _embed(x, (x.shape[0], x.shape[1] + 5), np.s_[:, 2:x.shape[1] + 2]),
    "transposed_padding":
        lambda x: _embed(np.ascontiguousarray(x.T), (x.shape[1], x.shape[0] + 3),
                         np.s_[:, 1:x.shape[0] + 1]).T,
    "row_step": lambda x: _embed(x, (2 * x.shape[0], x.shape[1]), np.s_[::2]),
    "column_step": lambda x: _embed(x, (x.shape[0], 3 * x.shape[1]), np.s_[:, ::3]),
    "both_steps": lambda x: _embed(x, (2 * x.shape[0], 3 * x.shape[1]), np.s_[::2, ::3]),
    "reversed_rows": lambda x: x[::-1].copy()[::-1],
    "reversed_columns": lambda x: x[:, ::-1].copy()[:, ::-1],
    "readonly": _readonly,
    "misaligned": _misaligned,
    "float64": lambda x: x.astype(np.float64),
    "float16": lambda x: x.astype(np.float16),
    "int32": lambda x: np.round(4 * x).astype(np.int32),
    "int64": lambda x: np.round(4 * x).astype(np.int64),
    "uint8": lambda x: np.abs(np.round(4 * x)).astype(np.uint8),
    "bool": lambda x: x > 0,
    "list": lambda x: x.tolist(),
}
# float32 layouts that the hypothesis test mixes between a and b
VIEW_LAYOUTS = ["c_order", "fortran", "transposed_view", "row_padding", "transposed_padding",
                "both_steps", "reversed_rows"]


# ------------------------------------------------------ numerical results

SHAPES = [  # (M, K, N): 1, primes, register-tile edges, small and blocked paths
    (1, 1, 1), (1, 13, 1), (1, 7, 31), (31, 7, 1), (7, 1, 13), (2, 3, 4),
    (5, 15, 17), (6, 16, 16), (7, 17, 15), (12, 8, 8), (14, 32, 32), (15, 33, 33),
    (13, 31, 7), (31, 97, 127), (97, 127, 31), (127, 257, 97), (509, 7, 13),
    (31, 13, 1031),
    (97, 1031, 1031),  # K over several KC blocks, N over two NC blocks
    (257, 1031, 509),
]


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=TRANS_IDS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_gemm_matches_reference_for_every_transpose_and_shape(isa, threads, m, k, n, trans_a,
                                                               trans_b):
    check(m, k, n, trans_a, trans_b, seed=m * 7 + k * 13 + n)


# "blocked": K * N over the small-matrix limit, K one past a multiple of every KC
@pytest.mark.parametrize("m,k,n", [(13, 31, 7), (23, 769, 450)], ids=["small", "blocked"])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5, -3.0])
@pytest.mark.parametrize("alpha", [1.0, -2.5, 0.0])
def test_gemm_scales_by_alpha_and_accumulates_beta_c(isa, threads, m, k, n, alpha, beta):
    for trans_a, trans_b in [(False, False), (True, True)]:
        check(m, k, n, trans_a, trans_b, alpha, beta)


def test_gemm_beta_one_accumulates_into_c(isa):
    a, b, c = operands(37, 211, 29, c=True)
    c0 = c.copy()
    gemm(a, b, beta=1.0, c=c)
    assert_gemm_close(c, a, b, beta=1.0, c=c0)
    gemm(a, b, beta=1.0, c=c)  # twice: C = 2 AB + C0
    assert_gemm_close(c, np.concatenate([a, a], axis=1), np.concatenate([b, b]), beta=1.0,
                      c=c0)


def test_gemm_alpha_zero_gives_beta_times_c(isa):
    a, b, c = operands(23, 57, 41, c=True)
    c0 = c.copy()
    out = gemm(a, b, alpha=0.0, beta=0.5, c=c)
    np.testing.assert_array_equal(out, np.float32(0.5) * c0)
    out = gemm(a, b, alpha=0.0, beta=0.0, c=c)
    np.testing.assert_array_equal(out, np.zeros_like(c0))


@pytest.mark.parametrize("fill", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("alpha", [1.0, 0.0])
@pytest.mark.parametrize("m,k,n", [(13, 31, 7), (1, 5, 3), (23, 769, 450), (9, 0, 11)],
                         ids=["small", "one_row", "blocked", "k_zero"])
def test_gemm_with_beta_zero_never_reads_c(isa, threads, m, k, n, alpha, fill):
    for trans_a, trans_b in TRANSPOSES:
        a, b = operands(m, k, n, trans_a, trans_b)
        c = np.full((m, n), fill, dtype=np.float32)
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=0.0, c=c)
        assert out is c
        assert np.isfinite(out).all(), f"C was read with beta=0 ({trans_a=}, {trans_b=})"
        assert_gemm_close(out, a, b, trans_a, trans_b, alpha)


ZERO_SHAPES = [(0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0), (0, 0, 5), (5, 0, 0), (0, 5, 0),
               (1, 0, 1), (300, 0, 200)]


@pytest.mark.parametrize("m,k,n", ZERO_SHAPES)
def test_gemm_with_zero_sizes_gives_beta_c_of_the_right_shape(isa, m, k, n):
    for trans_a, trans_b in TRANSPOSES:
        a, b, c = operands(m, k, n, trans_a, trans_b, c=True)
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        assert out.shape == (m, n) and out.dtype == np.float32
        np.testing.assert_array_equal(out, np.zeros((m, n), np.float32))  # K = 0: empty sum
        c0 = c.copy()
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=2.0, beta=-1.5, c=c)
        assert out is c
        assert_gemm_close(out, a, b, trans_a, trans_b, 2.0, -1.5, c0)
        if k == 0:
            np.testing.assert_array_equal(out, np.float32(-1.5) * c0)


TALL_SKINNY = [(10000, 3, 17), (3, 5000, 2), (2, 3, 10000), (17, 10000, 3), (1, 4096, 1),
               (2000, 1, 3000), (4099, 1, 7)]


@pytest.mark.parametrize("m,k,n", TALL_SKINNY)
def test_gemm_matches_reference_on_tall_and_skinny_shapes(isa, threads, m, k, n):
    for trans_a, trans_b in TRANSPOSES:
        check(m, k, n, trans_a, trans_b, seed=m + k + n)


# What the CNN and RNN layers send: forward (NN) and the two backward products.
CNN_RNN_SHAPES = [(64, 2048, 512), (64, 512, 10), (4096, 27, 32), (16384, 288, 64)]


@pytest.mark.parametrize("m,k,n", CNN_RNN_SHAPES)
def test_gemm_matches_reference_on_cnn_and_rnn_shapes(isa, threads, m, k, n):
    for trans_a, trans_b in TRANSPOSES:
        check(m, k, n, trans_a, trans_b, seed=n)
    check(m, k, n, alpha=0.5, beta=1.0)


def test_gemm_matches_reference_at_2048_cubed_on_the_best_isa():
    _C.set_isa(BEST_ISA)
    check(2048, 2048, 2048, seed=2048)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(0, 300), k=st.integers(0, 300), n=st.integers(0, 300),
       trans_a=st.booleans(), trans_b=st.booleans(),
       alpha=st.sampled_from([1.0, 0.0, -1.0]) | st.floats(-4, 4, width=32),
       beta=st.sampled_from([0.0, 1.0]) | st.floats(-4, 4, width=32),
       with_c=st.booleans(),
       layout_a=st.sampled_from(VIEW_LAYOUTS), layout_b=st.sampled_from(VIEW_LAYOUTS),
       seed=st.integers(0, 2**32 - 1))
def test_gemm_matches_reference_on_random_shapes(isa, threads, m, k, n, trans_a, trans_b, alpha,
                                                 beta, with_c, layout_a, layout_b, seed):
    a, b, c = operands(m, k, n, trans_a, trans_b, seed, c=True)
    a, b = LAYOUTS[layout_a](a), LAYOUTS[layout_b](b)
    if not with_c:
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
        assert_gemm_close(out, a, b, trans_a, trans_b, alpha)  # no c: C counts as zero
        return
    if beta == 0.0:
        c[...] = np.nan
    c0 = c.copy()
    out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    assert out is c
    assert_gemm_close(out, a, b, trans_a, trans_b, alpha, beta, None if beta == 0 else c0)


# ------------------------------------------------- inputs, outputs, aliasing

@pytest.mark.parametrize("m,k,n", [(23, 17, 19), (1, 17, 19), (23, 1, 19), (23, 17, 1)])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_gemm_accepts_any_layout_and_numeric_dtype(isa, layout, m, k, n):
    for trans_a, trans_b in TRANSPOSES:
        a0, b0 = operands(m, k, n, trans_a, trans_b, seed=k)
        a, b = LAYOUTS[layout](a0), LAYOUTS[layout](b0)
        before = (np.array(a, copy=True), np.array(b, copy=True))
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        assert_gemm_close(out, a, b, trans_a, trans_b)
        # the inputs are left as they were
        np.testing.assert_array_equal(np.asarray(a), before[0])
        np.testing.assert_array_equal(np.asarray(b), before[1])


@pytest.mark.parametrize("operand", ["a", "b"])
def test_gemm_accepts_broadcast_inputs_with_zero_strides(isa, operand):
    a, b = operands(11, 7, 5)
    if operand == "a":
        a = np.broadcast_to(a[0], a.shape)  # strides (0, 4)
    else:
        b = np.broadcast_to(b[:, :1], b.shape)  # strides (4, 0)
    for trans_a, trans_b in TRANSPOSES:
        aa = a.T if trans_a else a
        bb = b.T if trans_b else b
        out = gemm(aa, bb, trans_a=trans_a, trans_b=trans_b)
        assert_gemm_close(out, aa, bb, trans_a, trans_b)


def test_gemm_without_c_returns_a_new_float32_c_contiguous_array():
    a, b = operands(9, 4, 6)
    out = gemm(a, b)
    assert type(out) is np.ndarray
    assert out.dtype == np.float32 and out.shape == (9, 6)
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.may_share_memory(out, a) and not np.may_share_memory(out, b)
    assert gemm(a, b) is not out
    assert_gemm_close(out, a, b)


def test_gemm_with_float64_inputs_still_returns_float32():
    a, b = operands(9, 4, 6)
    out = gemm(a.astype(np.float64), b.astype(np.float64))
    assert out.dtype == np.float32
    assert_gemm_close(out, a, b)


def test_gemm_updates_the_given_c_in_place_and_returns_it():
    a, b, c = operands(9, 4, 6, c=True)
    c0 = c.copy()
    ptr = c.ctypes.data
    out = gemm(a, b, alpha=1.5, beta=2.0, c=c)
    assert out is c and c.ctypes.data == ptr
    assert_gemm_close(c, a, b, alpha=1.5, beta=2.0, c=c0)


def test_gemm_writes_only_inside_a_c_that_is_a_view():
    a, b = operands(9, 4, 6)
    guard = np.full((11, 6), 7.0, dtype=np.float32)
    c = guard[1:10]  # C-contiguous view with neighbours above and below
    assert c.flags.c_contiguous
    out = gemm(a, b, c=c)
    assert out is c
    assert_gemm_close(out, a, b)
    np.testing.assert_array_equal(guard[[0, 10]], 7.0)


@pytest.mark.parametrize("trans", [False, True])
def test_gemm_with_c_aliasing_an_input_gives_the_right_result(isa, trans):
    n = 37
    a, b = operands(n, n, n, seed=3)
    for alias in ["a", "b", "both"]:
        a1, b1 = a.copy(), b.copy()
        if alias == "both":
            b1 = a1
        c = a1 if alias in ("a", "both") else b1
        want_a, want_b, c0 = a1.copy(), b1.copy(), c.copy()
        out = gemm(a1, b1, trans_a=trans, trans_b=trans, alpha=0.5, beta=1.0, c=c)
        assert out is c
        assert_gemm_close(out, want_a, want_b, trans, trans, 0.5, 1.0, c0)


def test_gemm_with_c_overlapping_part_of_a_gives_the_right_result(isa):
    buf = np.random.default_rng(5).standard_normal((40, 33), dtype=np.float32)
    a, c = buf[1:34], buf[:33]  # shifted by one row
    b = np.random.default_rng(6).standard_normal((33, 33), dtype=np.float32)
    a0, c0 = a.copy(), c.copy()
    out = gemm(a, b, beta=-1.0, c=c)
    assert out is c
    assert_gemm_close(out, a0, b, beta=-1.0, c=c0)


# ------------------------------------------------------------- bad input

F32 = np.float32
BAD_INPUTS = {
    "a_1d": (dict(a=np.ones(4, F32)), ValueError, r"'a'.*2-D.*\(4,\)"),
    "b_1d": (dict(b=np.ones(4, F32)), ValueError, r"'b'.*2-D.*\(4,\)"),
    "a_0d": (dict(a=np.float32(2)), ValueError, r"'a'.*2-D.*\(\)"),
    "a_3d": (dict(a=np.ones((2, 3, 4), F32)), ValueError, r"'a'.*2-D.*\(2, 3, 4\)"),
    "b_3d": (dict(b=np.ones((4, 5, 1), F32)), ValueError, r"'b'.*2-D.*\(4, 5, 1\)"),
    "inner_mismatch": (dict(b=np.ones((5, 6), F32)), ValueError,
                       r"op\(a\) has shape \(3, 4\).*op\(b\) has shape \(5, 6\)"),
    "inner_mismatch_trans_a": (dict(a=np.ones((3, 4), F32), trans_a=True), ValueError,
                               r"op\(a\) has shape \(4, 3\).*op\(b\) has shape \(4, 5\)"),
    "inner_mismatch_trans_b": (dict(trans_b=True), ValueError,
                               r"op\(a\) has shape \(3, 4\).*op\(b\) has shape \(5, 4\)"),
    "c_wrong_shape": (dict(c=np.zeros((5, 3), F32)), ValueError, r"'c'.*\(3, 5\).*\(5, 3\)"),
    "c_1d": (dict(c=np.zeros(15, F32)), ValueError, r"'c'.*\(3, 5\).*\(15,\)"),
    "c_3d": (dict(c=np.zeros((1, 3, 5), F32)), ValueError, r"'c'.*\(3, 5\).*\(1, 3, 5\)"),
    "c_float64": (dict(c=np.zeros((3, 5))), TypeError, r"'c'.*float32.*float64"),
    "c_int32": (dict(c=np.zeros((3, 5), np.int32)), TypeError, r"'c'.*float32.*int32"),
    "c_fortran": (dict(c=np.zeros((3, 5), F32, order="F")), ValueError, r"'c'.*contiguous"),
    "c_strided": (dict(c=np.zeros((3, 10), F32)[:, ::2]), ValueError, r"'c'.*contiguous"),
    "c_readonly": (dict(c=_readonly(np.zeros((3, 5), F32))), ValueError, r"'c'.*writeable"),
    "c_list": (dict(c=[[0.0] * 5] * 3), TypeError, r"'c'"),
    "a_string": (dict(a="abc"), TypeError, r"'a'"),
    "b_string_array": (dict(b=np.array([["1", "2"]] * 4)), TypeError, r"'b'.*<U1"),
    "a_object_array": (dict(a=np.ones((3, 4), dtype=object)), TypeError, r"'a'.*object"),
    "b_object_array_of_none": (dict(b=np.full((4, 5), None)), TypeError, r"'b'.*object"),
    "a_complex": (dict(a=np.ones((3, 4), np.complex64)), TypeError, r"'a'.*complex"),
    "a_none": (dict(a=None), TypeError, r"'a'"),
    "a_ragged_list": (dict(a=[[1.0, 2.0], [3.0]]), (TypeError, ValueError), r"'a'"),
    "alpha_string": (dict(alpha="1"), TypeError, r"'alpha'"),
    "alpha_none": (dict(alpha=None), TypeError, r"'alpha'"),
    "alpha_complex": (dict(alpha=1j), TypeError, r"'alpha'"),
    "beta_string": (dict(beta="0", c=np.zeros((3, 5), F32)), TypeError, r"'beta'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_gemm_rejects_bad_input_naming_the_argument(case):
    kwargs, exc, match = BAD_INPUTS[case]
    args = dict(a=np.ones((3, 4), F32), b=np.ones((4, 5), F32))
    args.update(kwargs)
    c_before = np.array(args["c"], copy=True) if isinstance(args.get("c"), np.ndarray) else None
    a, b = args.pop("a"), args.pop("b")
    with pytest.raises(exc, match=match):
        gemm(a, b, **args)
    if c_before is not None:
        np.testing.assert_array_equal(args["c"], c_before)  # a failed call leaves c alone


@pytest.mark.parametrize("case", ["c_too_small", "c_float64", "a_float64", "inner_mismatch",
                                  "a_1d"])
def test_the_binding_itself_rejects_bad_arrays_before_touching_memory(case):
    # kernels.gemm checks first; _C checks again so that no caller can make
    # the kernel read or write outside its buffers.
    a, b, c = np.ones((3, 4), F32), np.ones((4, 5), F32), np.zeros((3, 5), F32)
    exc = ValueError
    if case == "c_too_small":
        c = np.zeros((2, 5), F32)
    elif case == "c_float64":
        c, exc = np.zeros((3, 5)), TypeError
    elif case == "a_float64":
        a, exc = a.astype(np.float64), TypeError
    elif case == "inner_mismatch":
        b = np.ones((5, 5), F32)
    elif case == "a_1d":
        a = np.ones(12, F32)
    with pytest.raises(exc):
        _C.gemm(a, b, False, False, 1.0, 0.0, c)


# --------------------------------------------------- threads, determinism

@pytest.mark.parametrize("m,k,n", [(97, 127, 1031), (257, 1031, 509), (1031, 300, 13)])
def test_gemm_result_does_not_depend_on_thread_count_or_repetition(isa, m, k, n):
    for trans_a, trans_b in [(False, False), (True, True)]:
        a, b = operands(m, k, n, trans_a, trans_b)
        results = []
        for t in [1, 2, 2, 1]:
            fastnn.set_num_threads(t)
            results.append(gemm(a, b, trans_a=trans_a, trans_b=trans_b))
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])


def test_gemm_with_more_threads_than_cores_is_correct(isa):
    fastnn.set_num_threads(2 * (os.cpu_count() or 1) + 1)
    for m, k, n in [(257, 1031, 509), (1031, 300, 13), (5, 700, 3000)]:
        check(m, k, n, seed=k)
        check(m, k, n, True, True, alpha=-0.5, beta=2.0, seed=n)


def test_gemm_from_several_python_threads_at_once_gives_correct_results(isa):
    shapes = [(257, 1031, 509), (97, 127, 31), (640, 200, 700), (31, 13, 1031)]
    problems = [operands(*s, seed=i) for i, s in enumerate(shapes)]
    expected = [gemm(a, b) for a, b in problems]
    failures = []

    def work(i):
        a, b = problems[i]
        for _ in range(8):
            if not np.array_equal(gemm(a, b), expected[i]):
                failures.append(shapes[i])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(shapes))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, f"concurrent calls gave different results for {failures}"
    for (a, b), out in zip(problems, expected):
        assert_gemm_close(out, a, b)


def test_gemm_releases_the_gil_while_it_runs():
    fastnn.set_num_threads(1)
    a, b = operands(1024, 1024, 1024)
    gemm(a, b)
    span = {}

    def work():
        t0 = time.perf_counter()
        for _ in range(4):
            gemm(a, b)
        span["t"] = (t0, time.perf_counter())

    ticks = []
    worker = threading.Thread(target=work)
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    t0, t1 = span["t"]
    margin = 0.1 * (t1 - t0)
    during = sum(t0 + margin < t < t1 - margin for t in ticks)
    # with the GIL held the main thread could not run at all inside the calls
    assert during >= 100, f"main thread ran {during} times in {t1 - t0:.3f}s of gemm"


# ------------------------------------------------------------- ISA choice

def test_set_isa_switches_the_path_that_build_info_reports():
    for name in SUPPORTED_ISAS:
        _C.set_isa(name)
        assert _C.get_isa() == name
        assert fastnn.build_info()["isa"] == name


def test_set_isa_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="bogus"):
        _C.set_isa("bogus")


@pytest.mark.skipif("avx512" in SUPPORTED_ISAS, reason="this CPU runs avx512")
def test_set_isa_avx512_raises_on_a_cpu_without_it():
    before = _C.get_isa()
    with pytest.raises(ValueError, match="avx512"):
        _C.set_isa("avx512")
    assert _C.get_isa() == before


def test_supported_isas_start_with_generic():
    assert SUPPORTED_ISAS[0] == "generic"
    assert set(SUPPORTED_ISAS) <= {"generic", "avx2", "avx512"}


_SUBPROCESS_SCRIPT = """
import json, sys
import numpy as np
import fastnn
from fastnn.kernels import gemm
data = np.load(sys.argv[1])
out = gemm(data["a"], data["b"], trans_b=True, alpha=0.5, beta=-1.0, c=data["c"].copy())
np.save(sys.argv[2], out)
print(json.dumps({"isa": fastnn.build_info()["isa"], "get_isa": fastnn._C.get_isa()}))
"""


def run_with_isa_env(value, tmp_path):
    """gemm in a fresh interpreter with FASTNN_ISA=value: (reported isa, checked)."""
    a, b, c = operands(45, 67, 29, trans_b=True, c=True)
    np.savez(tmp_path / "in.npz", a=a, b=b, c=c)
    env = dict(os.environ, FASTNN_ISA=value)
    # the child imports the same fastnn as this process
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [package_root, env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_SCRIPT, str(tmp_path / "in.npz"),
         str(tmp_path / "out.npy")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["isa"] == info["get_isa"]
    assert_gemm_close(np.load(tmp_path / "out.npy"), a, b, False, True, 0.5, -1.0, c)
    return info["isa"]


@pytest.mark.parametrize("name", ["generic", "avx2", "avx512"])
def test_fastnn_isa_env_forces_the_path_or_falls_back_to_the_best(name, tmp_path):
    want = name if name in SUPPORTED_ISAS else BEST_ISA
    assert run_with_isa_env(name, tmp_path) == want


def test_unknown_fastnn_isa_env_falls_back_to_the_best_and_imports(tmp_path):
    assert run_with_isa_env("bogus", tmp_path) == BEST_ISA
