"""fastnn.kernels.gemm against the float64 reference, on every SIMD path.

C = alpha * op(A) @ op(B) + beta * C in float32. Every result goes through
reference.gemm.assert_gemm_close: the error of each element must be at
most eps32 * (4 + 2 sqrt(K)) times the Cauchy-Schwarz bound |row of op(A)| *
|column of op(B)| of its dot product (plus |beta * C|). Correct results on
the random data here stay under a fifth of it (the closest at K of 3 to
13), under a tenth at K over 64 and under a fiftieth at K over 1000.

What that catches: for these N(0, 1) operands the tolerance of an element is
about eps32 * 2 K^1.5 (0.0011 at K = 257, 0.0084 at K = 1031, 0.24 at
K = 10000), and a single term a_ik * b_kj left out of one element, or added
twice, fails only where it is larger than that: it slips through in about
0.5% of elements at K = 257, 3% at K = 1031 and 40% at K = 10000. A kernel
bug (a skipped k step or K block, a wrong edge tile or micro-panel, a
thread's share done twice or not at all) gets many terms or many elements
wrong at once and fails at every K used here; one wrong term in one element
at large K may pass.
"""
import ctypes
import itertools
import math
import os
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from conftest import BEST_ISA, SUPPORTED_ISAS, last_json_line, run_python
from fastnn import _C
from fastnn.kernels import gemm
from reference.gemm import assert_gemm_close

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
    assert not y.flags.aligned or y.size == 0  # NumPy counts an empty array as aligned
    return y


def _byte_swapped(x):
    """x as float32 in the other byte order ('>f4' on a little-endian machine)."""
    y = x.astype(x.dtype.newbyteorder("S"))
    assert not y.dtype.isnative
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
    "byte_swapped": _byte_swapped,
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
                "both_steps", "reversed_rows", "misaligned", "byte_swapped"]


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


# Products that gemm splits over two threads: it gives a product one thread
# per 300 kFLOP (2 M N K), so below 600 kFLOP it runs on one thread whatever
# the thread count. These are all well above that (one block of a single
# strip cannot be much bigger: 786 kFLOP; the rest over 1 MFLOP), on each
# path of the driver:
# one block (op(B) used whole: K * N <= 65536), blocked (K * N > 65536, K over
# several KC blocks or N over two NC blocks) and narrow (dot products: N
# under 4/5 of the register tile width, i.e. N <= 12 on avx2, <= 9 on
# generic, <= 25 on avx512, with K >= 16). The one-strip shapes (M no more
# than the register tile height on avx2 and avx512) split the columns over
# the threads instead of the rows.
SPLIT_SHAPES = {
    "one_block_square": (61, 255, 257),
    "one_block_tall": (1031, 37, 45),
    "one_block_wide": (29, 61, 1031),
    "one_block_one_strip": (6, 256, 256),
    "blocked_k_blocks": (131, 769, 97),
    "blocked_n_blocks": (37, 100, 4099),
    "blocked_one_strip": (5, 3001, 41),
    "narrow_tall": (4001, 17, 9),
    "narrow_deep": (97, 2049, 3),
    "narrow_one_column": (2001, 257, 1),
    "narrow_widest": (257, 301, 12),
}
assert all(2 * m * k * n >= 750_000 for m, k, n in SPLIT_SHAPES.values())


# The narrow path reads op(A) in place and so needs its rows contiguous in k:
# A in C order without trans_a, or a transposed view of it with trans_a
# (other combinations take the blocked path). Both layouts, so that either
# trans_a reaches it.
@pytest.mark.parametrize("layout_a", ["c_order", "transposed_view"])
@pytest.mark.parametrize("shape", list(SPLIT_SHAPES))
@pytest.mark.parametrize("nthreads", [2, 3], ids=lambda n: f"{n}thr")
def test_gemm_split_over_threads_matches_reference_on_every_path(isa, nthreads, shape,
                                                                  layout_a):
    m, k, n = SPLIT_SHAPES[shape]
    fastnn.set_num_threads(nthreads)
    for (trans_a, trans_b), (alpha, beta) in zip(TRANSPOSES, [(1.0, 0.0), (0.75, -1.5),
                                                              (-2.0, 1.0), (1.0, 0.0)]):
        a, b, c = operands(m, k, n, trans_a, trans_b, seed=m + k + n, c=True)
        a = LAYOUTS[layout_a](a)
        c0 = c.copy()
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
        assert out is c
        assert_gemm_close(out, a, b, trans_a, trans_b, alpha, beta, c0)


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
       # no factor within a few powers of ten of the smallest normal float32: the kernels
       # run with flush-to-zero and denormals-are-zero, and products scaled by such a
       # factor fall below the normal range and are flushed on the way (the tolerance
       # allows for results flushed to zero, not for terms flushed before the sum)
       alpha=st.sampled_from([1.0, 0.0, -1.0]) | st.floats(-4, 4, width=32).filter(
           lambda v: v == 0.0 or abs(v) >= 1e-30),
       beta=st.sampled_from([0.0, 1.0]) | st.floats(-4, 4, width=32).filter(
           lambda v: v == 0.0 or abs(v) >= 1e-30),
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


# A float32 input in the other byte order, or not aligned to 4 bytes, is read
# by value (converted, never taken as native floats), on every path.
@pytest.mark.parametrize("m,k,n", [(13, 31, 7), (61, 255, 257), (23, 769, 450), (257, 301, 9)],
                         ids=["small", "one_block", "blocked", "narrow"])
@pytest.mark.parametrize("operand", ["a", "b", "both"])
@pytest.mark.parametrize("layout", ["byte_swapped", "misaligned"])
def test_gemm_reads_byte_swapped_and_misaligned_inputs_by_value(isa, layout, operand, m, k, n):
    for trans_a, trans_b in TRANSPOSES:
        a0, b0, c = operands(m, k, n, trans_a, trans_b, seed=m + n, c=True)
        a = LAYOUTS[layout](a0) if operand in ("a", "both") else a0
        b = LAYOUTS[layout](b0) if operand in ("b", "both") else b0
        c0 = c.copy()
        out = gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=1.5, beta=-1.0, c=c)
        assert out is c
        assert_gemm_close(out, a0, b0, trans_a, trans_b, 1.5, -1.0, c0)
        np.testing.assert_array_equal(a, a0)  # the inputs are left as they were
        np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("layout", ["byte_swapped", "misaligned"])
def test_the_binding_never_reads_a_byte_swapped_or_misaligned_input_as_native(layout):
    # _C.gemm may convert such an input itself or refuse it with TypeError
    # (kernels.gemm then converts it); it must not read its bytes as floats.
    a0, b0 = operands(13, 31, 7)
    for a, b in [(LAYOUTS[layout](a0), b0), (a0, LAYOUTS[layout](b0))]:
        name = "a" if a is not a0 else "b"
        try:
            out = _C.gemm(a, b, False, False, 1.0, 0.0, None)
        except TypeError as e:
            assert f"'{name}'" in str(e)
        else:
            assert_gemm_close(out, a0, b0)


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
    "c_byte_swapped": (dict(c=_byte_swapped(np.zeros((3, 5), F32))), TypeError, r"'c'"),
    "c_misaligned": (dict(c=_misaligned(np.zeros((3, 5), F32))), ValueError, r"'c'.*aligned"),
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


@pytest.mark.parametrize("case", ["c_too_small", "c_float64", "c_byte_swapped", "c_misaligned",
                                  "a_float64", "inner_mismatch", "a_1d"])
def test_the_binding_itself_rejects_bad_arrays_before_touching_memory(case):
    # kernels.gemm checks first; _C checks again so that no caller can make
    # the kernel read or write outside its buffers.
    a, b, c = np.ones((3, 4), F32), np.ones((4, 5), F32), np.full((3, 5), 7.0, F32)
    exc = ValueError
    if case == "c_too_small":
        c = np.full((2, 5), 7.0, F32)
    elif case == "c_float64":
        c, exc = np.full((3, 5), 7.0), TypeError
    elif case == "c_byte_swapped":
        c, exc = _byte_swapped(c), TypeError
    elif case == "c_misaligned":
        c = _misaligned(c)
    elif case == "a_float64":
        a, exc = a.astype(np.float64), TypeError
    elif case == "inner_mismatch":
        b = np.ones((5, 5), F32)
    elif case == "a_1d":
        a = np.ones(12, F32)
    with pytest.raises(exc):
        _C.gemm(a, b, False, False, 1.0, 0.0, c)
    np.testing.assert_array_equal(c, 7.0)  # c holds what it held


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


@pytest.mark.parametrize("count", ["twice_the_cores", "the_cap"])
def test_gemm_with_more_threads_than_cores_is_correct(isa, count):
    cap = _C.max_threads()
    fastnn.set_num_threads(cap if count == "the_cap" else min(2 * (os.cpu_count() or 1) + 1, cap))
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


def _main_thread_share_during(call):
    """Runs call() once in a worker thread while this thread counts loop
    turns. Returns (share, turns, seconds): the turns this thread made
    strictly inside the call (counted from the worker, just before and just
    after it), and their rate as a share of this thread's free-running rate,
    the larger of the rates measured just before and just after.

    A call that keeps the GIL stops this thread for all of it but a switch
    interval (5 ms) or two around it: a share of a few percent on a call of
    0.2 s. One that releases it leaves this thread running on another core."""
    perf = time.perf_counter
    count = [0]
    until = [0.0]

    def spin():  # the one loop both rates are measured with
        while perf() < until[0]:
            count[0] += 1

    def free_rate(seconds=0.05):
        count[0] = 0
        t0 = perf()
        until[0] = t0 + seconds
        spin()
        return count[0] / (perf() - t0)

    span = {}

    def work():
        try:
            t0, n0 = perf(), count[0]
            call()
            n1, t1 = count[0], perf()
            span.update(turns=n1 - n0, seconds=t1 - t0)
        finally:
            until[0] = -math.inf  # stops spin(), even if call() raised

    before = free_rate()
    count[0], until[0] = 0, math.inf
    worker = threading.Thread(target=work)
    worker.start()
    spin()
    worker.join()
    assert span, "the call raised (see the exception the worker thread printed)"
    rate = max(before, free_rate())
    return span["turns"] / span["seconds"] / rate, span["turns"], span["seconds"]


GIL_FREE_SHARE = 0.3  # a call holding the GIL for 0.2 s or more gives a few percent
PROBE_SECONDS = 0.25


def _share_over_tries(call, tries=3):
    """The best of up to `tries` probes, stopping at the first that reaches
    GIL_FREE_SHARE: on a busy machine one probe may see this thread
    descheduled, but no number of tries lifts a GIL-holding call to it."""
    results = []
    for _ in range(tries):
        share, turns, seconds = result = _main_thread_share_during(call)
        results.append(result)
        if share >= GIL_FREE_SHARE and turns >= 1000:
            return result, results
    return max(results), results


def test_the_gil_probe_tells_a_call_holding_the_gil_from_one_releasing_it():
    # ctypes.PyDLL keeps the GIL through a foreign call, ctypes.CDLL drops it
    holding, releasing = ctypes.PyDLL(None).usleep, ctypes.CDLL(None).usleep
    micros = int(PROBE_SECONDS * 1e6)
    share, turns, seconds = _main_thread_share_during(lambda: holding(micros))
    assert seconds >= PROBE_SECONDS
    assert share < GIL_FREE_SHARE, f"the probe saw {share:.0%} with the GIL held for {seconds:.3f} s"
    (share, turns, seconds), tries = _share_over_tries(lambda: releasing(micros))
    assert share >= GIL_FREE_SHARE and turns >= 1000, f"probes (share, turns, s): {tries}"


def test_gemm_releases_the_gil_while_it_runs():
    # One single call on one thread, sized to last about PROBE_SECONDS here.
    fastnn.set_num_threads(1)
    a, b = operands(1024, 1024, 1024)
    gemm(a, b)
    t0 = time.perf_counter()
    gemm(a, b)
    per_1024 = time.perf_counter() - t0
    size = int(min(3072, max(1024, 1024 * (PROBE_SECONDS / per_1024) ** (1 / 3))))
    a, b = operands(size, size, size)
    (share, turns, seconds), tries = _share_over_tries(lambda: gemm(a, b))
    assert seconds >= 20 * sys.getswitchinterval(), f"a {size}^3 gemm took only {seconds:.3f} s"
    # with the GIL held this thread could not have run inside the call
    assert share >= GIL_FREE_SHARE and turns >= 1000, (
        f"this thread ran at {share:.0%} of its free rate ({turns} turns) during a "
        f"{seconds:.3f} s gemm of {size}^3; probes (share, turns, s): {tries}")


_NESTED_SCRIPT = """
import json, sys
import fastnn
from fastnn import _C
outer, m, k, n = map(int, sys.argv[1:5])
fastnn.set_num_threads(2)  # each inner gemm would split over two threads
errors = {}
for name in _C.supported_isas():
    _C.set_isa(name)
    errors[name] = _C._nested_gemm_check(outer, m, k, n)
print(json.dumps(errors))
"""


# Thread t of one OpenMP parallel region runs its own (m+t, k) x (k, n+2t)
# gemm: the kernel must run inline, never waiting at a barrier of the
# enclosing team, and give the right result. A kernel that did wait there
# hangs only where the threads reach different numbers of barriers: the
# "straddling" shapes put thread 0 on one side of a limit and thread 1 on
# the other (K * N = 65536 vs 66048: one block vs blocked, on every path;
# N = 4095 vs 4097: one NC block vs two on avx2 and avx512). The others,
# with the same blocks in every thread, check the results.
@pytest.mark.parametrize("m,k,n", [(37, 29, 41), (200, 700, 300), (301, 200, 5),
                                   (64, 256, 256), (37, 100, 4095)],
                         ids=["one_block", "blocked", "narrow", "straddling_one_block",
                              "straddling_nc"])
@pytest.mark.parametrize("outer", [2, 3])
def test_gemm_inside_an_openmp_parallel_region_finishes_with_the_right_result(outer, m, k, n):
    # a child process: a hang is killed after the timeout (each run takes
    # well under a second) instead of hanging the suite
    proc = run_python(_NESTED_SCRIPT, outer, m, k, n, timeout=60)
    errors = last_json_line(proc)
    assert sorted(errors) == sorted(SUPPORTED_ISAS)
    limit = 1e-3 * math.sqrt(k)
    wrong = {name: err for name, err in errors.items() if not err <= limit}
    assert not wrong, f"max abs error over {limit:.3g} against the C++ reference: {wrong}"


# ------------------------------------------------------------- ISA choice

def test_set_isa_switches_the_path_that_build_info_reports():
    for name in SUPPORTED_ISAS:
        _C.set_isa(name)
        assert _C.get_isa() == name
        assert fastnn.build_info()["isa"] == name


def test_set_isa_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="bogus"):
        _C.set_isa("bogus")


# keyed to supported_isas(), not the CPU: an FASTNN_EMULATE_AVX512 build runs
# the avx512 path on an AVX2 CPU
@pytest.mark.skipif("avx512" in SUPPORTED_ISAS, reason="this build runs the avx512 path here")
def test_set_isa_avx512_raises_where_the_build_cannot_run_it():
    before = _C.get_isa()
    with pytest.raises(ValueError, match="avx512"):
        _C.set_isa("avx512")
    assert _C.get_isa() == before


def test_supported_isas_start_with_generic():
    assert SUPPORTED_ISAS[0] == "generic"
    assert set(SUPPORTED_ISAS) <= {"generic", "avx2", "avx512"}


_ISA_ENV_SCRIPT = """
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
    """gemm in a fresh interpreter with FASTNN_ISA=value, its result checked;
    returns the ISA it reported."""
    a, b, c = operands(45, 67, 29, trans_b=True, c=True)
    np.savez(tmp_path / "in.npz", a=a, b=b, c=c)
    proc = run_python(_ISA_ENV_SCRIPT, tmp_path / "in.npz", tmp_path / "out.npy",
                      FASTNN_ISA=value)
    info = last_json_line(proc)
    assert info["isa"] == info["get_isa"]
    assert_gemm_close(np.load(tmp_path / "out.npy"), a, b, False, True, 0.5, -1.0, c)
    return info["isa"]


@pytest.mark.parametrize("name", ["generic", "avx2", "avx512"])
def test_fastnn_isa_env_forces_the_path_or_falls_back_to_the_best(name, tmp_path):
    want = name if name in SUPPORTED_ISAS else BEST_ISA
    assert run_with_isa_env(name, tmp_path) == want


def test_unknown_fastnn_isa_env_falls_back_to_the_best_and_imports(tmp_path):
    assert run_with_isa_env("bogus", tmp_path) == BEST_ISA
