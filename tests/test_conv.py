"""2-D convolution and pooling: fastnn.kernels.conv2d / conv2d_backward,
max_pool2d / avg_pool2d and their backwards, and the autograd ops F.conv2d,
F.max_pool2d, F.avg_pool2d.

Checked against the float64 references of reference/conv.py:
- forward and every gradient (dx, dw, db) on every SIMD path, over a
  curated grid of shapes, strides, dilations and paddings, within a float32
  error model: a few ulps times sqrt(terms) times the magnitude of the terms
  summed (the reference run on absolute values);
- the float32 gradients of the autograd ops against central differences of
  the float64 reference forward;
- the fused ReLU, the autograd plumbing (F.* gradients are the kernels'),
  a conv -> pool -> sum chain, bit-identical results at 1 and 2 threads,
  the plain-loop C++ reference, pooling semantics worked out by hand (ties,
  padding that never wins, averages over real cells only) and bad input.
"""
import math
from typing import NamedTuple

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads
from fastnn import _C
from fastnn import kernels as K
from reference import conv as ref
from reference.checks import assert_within as _assert_within

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)  # flush-to-zero may drop denormals


@pytest.fixture(autouse=True)
def _direct_convolution(monkeypatch):
    """These tests hold the direct path to its error model: auto may pick
    Winograd, whose bound is looser (tests/test_winograd.py tests it)."""
    monkeypatch.setenv("FASTNN_CONV_ALGORITHM", "direct")


# ================================================================ helpers

def sum_tolerance(magnitude, terms):
    """The error a float32 sum of `terms` products may make, element-wise:
    eps32 * (4 + 2 sqrt(terms)) times the magnitude of what was summed (the
    sum of the terms' absolute values), plus the smallest normal float32.
    As reference/gemm.py's gemm_tolerance: random rounding errors grow like
    sqrt(terms), with room for any summation order (blocked, vectorised,
    split over threads)."""
    return EPS32 * (4.0 + 2.0 * math.sqrt(max(terms, 0))) * np.asarray(magnitude) + TINY32


def assert_within(actual, want, tol, what="result"):
    """A float32 ndarray within tol of want (reference.checks.assert_within)."""
    _assert_within(actual, want, tol, what, dtype=np.float32)


def assert_same_bits(actual, want, what):
    assert actual.shape == want.shape, f"{what}: shape {actual.shape}, want {want.shape}"
    assert actual.dtype == want.dtype, f"{what}: dtype {actual.dtype}, want {want.dtype}"
    assert actual.tobytes() == want.tobytes(), (
        f"{what}: not bit-identical, {int((actual != want).sum())} of {actual.size} differ")


def t32(a, requires_grad=True):
    """A float32 tensor over a private copy of a."""
    return fastnn.tensor(np.array(a, dtype=np.float32), requires_grad=requires_grad)


def central_differences(objective, arrays, h=1e-6):
    """d objective / d a for every element of every float64 array in arrays
    (perturbed in place, then restored): (f(a + h) - f(a - h)) / 2h."""
    grads = []
    for a in arrays:
        g = np.empty(a.shape)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + h
            up = objective()
            a[idx] = orig - h
            down = objective()
            a[idx] = orig
            g[idx] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def assert_matches_differences(analytic, numeric, rtol, what):
    """Within rtol of (|numeric| + max |numeric|): relative to the gradient's size."""
    scale = np.abs(numeric) + np.abs(numeric).max(initial=0.0)
    assert_within(analytic, numeric, rtol * scale + 1e-9, what)


# ================================================================ convolution cases

class ConvCase(NamedTuple):
    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    f: int
    stride: object = 1
    padding: object = "valid"
    dilation: object = 1
    bias: bool = True

    def __str__(self):
        pad = self.padding if isinstance(self.padding, str) else f"pad{self.padding}"
        return (f"x{self.n}x{self.h}x{self.w}x{self.c}-k{self.kh}x{self.kw}-f{self.f}-"
                f"s{self.stride}-{pad}-d{self.dilation}" + ("" if self.bias else "-nobias"))

    @property
    def opts(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def inputs(self, seed=0):
        """float32 x, w, b (None without bias)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.n, self.h, self.w, self.c)).astype(np.float32)
        w = rng.standard_normal((self.kh, self.kw, self.c, self.f)).astype(np.float32)
        b = rng.standard_normal(self.f).astype(np.float32) if self.bias else None
        return x, w, b


C = ConvCase
CONV_CASES = [
    # 1x1 kernels, single channels, F and C not multiples of the vector widths
    C(1, 5, 5, 1, 1, 1, 1),
    C(1, 7, 7, 64, 1, 1, 7, stride=2),
    C(1, 8, 8, 5, 1, 1, 12, stride=3, padding="same"),  # stride > kernel: no padding
    C(1, 4, 5, 3, 1, 1, 7, padding=(2, 1)),             # a border of bias only
    C(1, 9, 9, 1, 5, 5, 1, padding="same"),
    # 3x3, odd batches, valid and same
    C(3, 7, 6, 3, 3, 3, 7),
    C(3, 7, 6, 3, 3, 3, 7, padding="same"),
    C(3, 6, 7, 5, 3, 3, 7, padding="same", bias=False),
    C(3, 16, 16, 5, 3, 3, 7, padding="same"),           # many pixels: dw sums in blocks
    C(1, 8, 8, 64, 3, 3, 64, padding="same"),
    C(3, 9, 9, 64, 3, 3, 33, stride=2),
    C(3, 5, 5, 3, 5, 5, 7),                             # kernel = input: one pixel out
    C(3, 9, 9, 5, 5, 5, 16, padding="same"),
    C(1, 11, 10, 3, 5, 5, 12, stride=2),
    C(3, 12, 12, 3, 5, 5, 64, padding="same"),          # a first layer
    C(1, 6, 6, 96, 5, 5, 17, padding="same"),           # K = 2400: several K blocks
    # few channels: the image padded once, dw summed over rows of pixels
    C(2, 17, 19, 3, 3, 3, 20, stride=2, padding="same"),
    C(2, 12, 14, 4, 3, 2, 9, padding="same", dilation=2),
    C(1, 12, 20, 3, 3, 3, 17, stride=(1, 2), padding=1),
    C(2, 9, 12, 1, 2, 3, 16),
    # non-square and even kernels, asymmetric "same" splits (extra cell after)
    C(1, 6, 9, 64, 1, 3, 64, padding="same"),
    C(3, 7, 5, 5, 3, 2, 7, padding="same"),             # width: pad (0, 1)
    C(1, 6, 6, 3, 2, 2, 4, padding="same"),             # pad (0, 1) both ways
    C(3, 7, 7, 3, 2, 2, 5, stride=2, padding="same"),   # out 4: pad (0, 1)
    C(1, 9, 9, 3, 4, 4, 5, stride=2, padding="same"),   # out 5: pad (1, 2)
    C(1, 8, 8, 5, 3, 3, 33, stride=2, padding="same"),  # out 4: pad (0, 1)
    # stride 3, mixed strides
    C(3, 10, 11, 5, 3, 3, 7, stride=3),
    C(1, 10, 11, 5, 3, 3, 7, stride=3, padding="same"),  # pads (1, 1) and (0, 1)
    C(1, 10, 10, 3, 2, 2, 5, stride=3),                 # stride > window: skipped cells
    C(1, 7, 9, 3, 3, 3, 8, stride=(1, 2), padding="same"),
    C(3, 9, 7, 1, 3, 2, 5, stride=(2, 1)),
    # dilation
    C(1, 9, 9, 3, 3, 3, 7, dilation=2),
    C(3, 8, 7, 5, 3, 3, 16, padding="same", dilation=2),
    C(1, 10, 9, 3, 3, 3, 7, stride=2, padding="same", dilation=2),
    C(1, 8, 9, 3, 2, 2, 5, dilation=3),
    C(1, 7, 9, 3, 2, 3, 5, padding=(1, 2), dilation=(1, 2)),
    # explicit padding
    C(3, 6, 6, 3, 3, 3, 7, padding=1),
    C(1, 9, 8, 5, 3, 3, 33, stride=2, padding=2),
    C(1, 5, 4, 3, 3, 5, 7, padding=(0, 2)),
    C(1, 3, 3, 2, 2, 2, 3, padding=3),                  # padding wider than the kernel
    # inputs smaller than the kernel under "same"
    C(1, 2, 2, 3, 5, 5, 4, padding="same"),
    C(3, 1, 1, 5, 3, 3, 7, padding="same"),
    C(1, 3, 2, 3, 5, 5, 7, stride=2, padding="same"),
    # empty dimensions
    C(0, 5, 5, 3, 3, 3, 4, padding="same"),
    C(1, 5, 5, 0, 3, 3, 4, padding="same"),
    C(1, 5, 5, 3, 3, 3, 0, padding="same"),
]
del C
CONV_PARAMS = [pytest.param(c, id=str(c)) for c in CONV_CASES]


def conv_forward_tolerance(x, w, b, opts):
    """Each output sums KH*KW*C products (and the bias)."""
    magnitude = ref.conv2d_forward(np.abs(x), np.abs(w), None if b is None else np.abs(b), **opts)
    return sum_tolerance(magnitude, w.shape[0] * w.shape[1] * w.shape[2] + 1)


def conv_backward_tolerances(x, w, dout, opts):
    """dx sums up to KH*KW*F products, dw and db one per output pixel."""
    mags = ref.conv2d_backward(np.abs(dout), np.abs(x), np.abs(w), **opts)
    pixels = dout.shape[0] * dout.shape[1] * dout.shape[2]
    return (sum_tolerance(mags[0], w.shape[0] * w.shape[1] * w.shape[3]),
            sum_tolerance(mags[1], pixels), sum_tolerance(mags[2], pixels))


def check_conv_backward(grads, x, w, dout, opts, what=""):
    """(dx, dw, db) against the reference backward for dout."""
    wants = ref.conv2d_backward(dout, x, w, **opts)
    tols = conv_backward_tolerances(x, w, dout, opts)
    for name, g, want, tol in zip(("dx", "dw", "db"), grads, wants, tols):
        assert_within(g, want, tol, f"{what}{name}")


# ================================================================ the reference itself

@pytest.mark.parametrize("size,k,stride,dilation,want", [
    (8, 3, 1, 1, (1, 1, 8)),
    (8, 3, 2, 1, (0, 1, 4)),   # the extra cell goes after
    (7, 2, 2, 1, (0, 1, 4)),
    (6, 2, 1, 1, (0, 1, 6)),   # an even kernel at stride 1
    (9, 4, 2, 1, (1, 2, 5)),
    (10, 3, 3, 1, (1, 1, 4)),
    (11, 3, 3, 1, (0, 1, 4)),
    (8, 1, 3, 1, (0, 0, 3)),   # stride past the window: no padding, never negative
    (2, 5, 1, 1, (2, 2, 2)),   # input smaller than the kernel
    (2, 5, 2, 1, (1, 2, 1)),
    (1, 3, 1, 1, (1, 1, 1)),
    (8, 3, 1, 2, (2, 2, 8)),   # dilation 2: the window spans 5
    (10, 3, 2, 2, (1, 2, 5)),
])
def test_same_padding_follows_the_keras_rule(size, k, stride, dilation, want):
    assert ref.same_padding(size, k, stride, dilation) == want


@pytest.mark.parametrize("case", [
    ConvCase(2, 5, 4, 3, 3, 3, 4, padding="same"),
    ConvCase(1, 7, 6, 2, 2, 3, 3, stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    ConvCase(2, 6, 6, 2, 2, 2, 3, stride=2, padding="same"),
], ids=str)
def test_reference_conv_backward_matches_its_forward_by_central_differences(case):
    x, w, b = (a.astype(np.float64) for a in case.inputs(1))
    dout = np.random.default_rng(2).standard_normal(ref.conv2d_forward(x, w, b, **case.opts).shape)
    numeric = central_differences(
        lambda: float(np.sum(ref.conv2d_forward(x, w, b, **case.opts) * dout)), [x, w, b])
    for name, g, n in zip(("dx", "dw", "db"), ref.conv2d_backward(dout, x, w, **case.opts),
                          numeric):
        np.testing.assert_allclose(g, n, rtol=1e-7, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool_size,strides,padding", [
    (2, None, "valid"), (3, 1, "same"), ((2, 3), (1, 2), "same"), (3, 2, "same")])
def test_reference_pool_backward_matches_its_forward_by_central_differences(
        kind, pool_size, strides, padding):
    x = np.random.default_rng(4).standard_normal((2, 5, 6, 2))
    fwd = getattr(ref, f"{kind}_pool2d_forward")
    bwd = getattr(ref, f"{kind}_pool2d_backward")
    dout = np.random.default_rng(5).standard_normal(fwd(x, pool_size, strides, padding).shape)
    (numeric,) = central_differences(
        lambda: float(np.sum(fwd(x, pool_size, strides, padding) * dout)), [x])
    (analytic,) = bwd(dout, x, pool_size, strides, padding)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


# ================================================================ kernels.conv2d vs the reference

@pytest.mark.parametrize("case", CONV_PARAMS)
def test_conv2d_forward_and_gradients_match_reference_on_every_path(isa, case):
    x, w, b = case.inputs()
    y = K.conv2d(x, w, b, **case.opts)
    assert_within(y, ref.conv2d_forward(x, w, b, **case.opts),
                  conv_forward_tolerance(x, w, b, case.opts), f"forward on {isa}")
    dout = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    grads = K.conv2d_backward(x, w, dout, **case.opts)
    assert len(grads) == 3, f"conv2d_backward returned {len(grads)} values, want (dx, dw, db)"
    check_conv_backward(grads, x, w, dout, case.opts, f"{isa}: ")


@pytest.mark.parametrize("shape,k,stride,padding,want", [
    ((2, 8, 8, 3), 3, 1, "same", (2, 8, 8)),
    ((2, 8, 8, 3), 3, 2, "same", (2, 4, 4)),
    ((2, 7, 9, 3), 3, 2, "same", (2, 4, 5)),
    ((2, 7, 9, 3), 3, 2, "valid", (2, 3, 4)),
    ((2, 7, 9, 3), 3, 1, 1, (2, 7, 9)),
    ((2, 7, 9, 3), 3, 2, (0, 2), (2, 3, 6)),
    ((1, 2, 2, 3), 5, 1, "same", (1, 2, 2)),
    ((1, 10, 10, 3), 2, 3, "valid", (1, 3, 3)),
])
def test_conv2d_output_shape_follows_keras(shape, k, stride, padding, want):
    x = np.ones(shape, np.float32)
    w = np.ones((k, k, shape[3], 6), np.float32)
    assert K.conv2d(x, w, stride=stride, padding=padding).shape == want + (6,)


def test_conv2d_argument_spellings_agree():
    x, w, b = ConvCase(2, 9, 8, 3, 3, 3, 5).inputs()
    base = K.conv2d(x, w, b, stride=2, padding=1, dilation=1)
    for kwargs in (dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1)),
                   dict(stride=[2, 2], padding=[1, 1], dilation=np.int64(1)),
                   dict(stride=np.int32(2), padding=np.int64(1), dilation=1)):
        assert_same_bits(K.conv2d(x, w, b, **kwargs), base, f"conv2d with {kwargs}")
    # stride 1 and an odd kernel: "same" is explicit padding k // 2
    assert_same_bits(K.conv2d(x, w, b, padding="same"), K.conv2d(x, w, b, padding=1),
                     "'same' against padding 1")


def test_conv2d_converts_other_dtypes_and_layouts():
    x, w, b = ConvCase(2, 6, 7, 3, 3, 3, 5).inputs()
    want = K.conv2d(x, w, b, padding="same")
    x_t = np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)  # strided view
    assert not x_t.flags.c_contiguous
    assert_same_bits(K.conv2d(x_t, w.astype(np.float64), b.tolist(), padding="same"), want,
                     "float64 / strided / list inputs")
    dout = np.ones_like(want)
    for got, ref_grad, name in zip(K.conv2d_backward(x_t, w.astype(np.float64), dout,
                                                     padding="same"),
                                   K.conv2d_backward(x, w, dout, padding="same"),
                                   ("dx", "dw", "db")):
        assert_same_bits(got, ref_grad, name)


# ================================================================ the plain-loop C++ reference

def _c_padding(padding):
    if isinstance(padding, str):
        return padding, 0, 0
    ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
    return "explicit", ph, pw


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


C_REF_CASES = [c for c in CONV_CASES if c.n * c.c * c.f][::5]


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("case", [pytest.param(c, id=str(c)) for c in C_REF_CASES])
def test_c_reference_conv2d_agrees_with_numpy_reference_and_fast_kernel(case, relu):
    x, w, b = case.inputs(7)
    mode, ph, pw = _c_padding(case.padding)
    (sh, sw), (dh, dw) = _pair(case.stride), _pair(case.dilation)
    got = _C.conv2d_reference(x, w, b, sh, sw, mode, ph, pw, dh, dw, relu)
    want = ref.conv2d_forward(x, w, b, **case.opts)
    if relu:
        want = np.maximum(want, 0.0)
    # sums in double, rounded once to float32
    magnitude = ref.conv2d_forward(np.abs(x), np.abs(w), None if b is None else np.abs(b),
                                   **case.opts)
    assert_within(got, want, EPS32 * np.abs(want) + 1e-12 * magnitude + TINY32,
                  "conv2d_reference")
    fast = K.conv2d(x, w, b, activation="relu" if relu else None, **case.opts)
    assert_within(fast, got, conv_forward_tolerance(x, w, b, case.opts), "kernels.conv2d")


# ================================================================ fused ReLU

RELU_CASES = [ConvCase(3, 7, 6, 3, 3, 3, 7, padding="same"),
              ConvCase(1, 8, 8, 64, 3, 3, 33, stride=2, padding=1),
              ConvCase(1, 6, 9, 5, 1, 3, 12, bias=False)]


@pytest.mark.parametrize("case", RELU_CASES, ids=str)
def test_conv2d_relu_is_relu_of_the_plain_output(isa, case):
    x, w, b = case.inputs(3)
    plain = K.conv2d(x, w, b, **case.opts)
    assert (plain < 0).any() and (plain > 0).any(), "the test needs outputs of both signs"
    fused = K.conv2d(x, w, b, activation="relu", **case.opts)
    assert_same_bits(fused, np.maximum(plain, np.float32(0)), "conv2d(activation='relu')")
    assert not np.signbit(fused).any(), "relu output holds negative values (or -0.0)"


@pytest.mark.parametrize("case", RELU_CASES, ids=str)
def test_f_conv2d_relu_gradient_is_masked_where_the_output_is_zero(isa, case):
    x, w, b = case.inputs(3)
    tensors = [t32(a) for a in (x, w, b) if a is not None]
    out = F.conv2d(*tensors, activation="relu", **case.opts)
    y = out.numpy()
    mask = y > 0
    assert mask.any() and not mask.all(), "the test needs both masked and unmasked outputs"
    dout = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    out.backward(dout)
    masked = np.where(mask, dout, np.float32(0))
    want = K.conv2d_backward(x, w, masked, **case.opts)
    for name, t, g in zip(("dx", "dw", "db"), tensors, want):
        assert_same_bits(t.grad.numpy(), g, f"F.conv2d relu {name}")
    wants = ref.conv2d_backward(masked, x, w, **case.opts)
    tols = conv_backward_tolerances(x, w, masked, case.opts)
    for name, t, want_g, tol in zip(("dx", "dw", "db"), tensors, wants, tols):
        assert_within(t.grad.numpy(), want_g, tol, f"F.conv2d relu {name} vs reference")


FUSED_MASK_CASES = [
    (ConvCase(2, 9, 8, 3, 3, 3, 32), "direct"),  # conv1's short channel runs
    (ConvCase(2, 9, 10, 19, 3, 3, 17, padding="same"), "direct"),
    (ConvCase(1, 8, 8, 16, 3, 3, 33, stride=2, padding=1), "direct"),
    (ConvCase(2, 5, 6, 24, 1, 1, 40), "direct"),  # 1x1: plain GEMMs
    (ConvCase(2, 9, 10, 19, 3, 3, 17, padding="same"), "winograd2"),
    (ConvCase(2, 11, 9, 8, 3, 3, 24), "winograd4"),
]


@pytest.mark.parametrize("case,algorithm", FUSED_MASK_CASES, ids=lambda v: str(v))
def test_conv2d_backward_masks_dy_by_the_fused_relus_output(isa, threads, case, algorithm):
    """conv2d_backward(..., y=relu output) is conv2d_backward of dy * (y > 0),
    bit for bit, on every path, and that matches the float64 reference."""
    x, w, b = case.inputs(7)
    y = K.conv2d(x, w, b, activation="relu", algorithm=algorithm, **case.opts)
    mask = y > 0
    assert mask.any() and not mask.all(), "the test needs both masked and unmasked outputs"
    dy = np.random.default_rng(8).standard_normal(y.shape).astype(np.float32)
    masked = np.where(mask, dy, np.float32(0))
    window = fastnn._checks.conv_window(case.stride, case.padding, case.dilation, "test")
    for needs in [(True, True, True), (True, False, False), (False, True, False),
                  (False, False, True)]:
        fused = _C.conv2d_backward(x, w, dy, *window, *needs, algorithm, y=y)
        want = _C.conv2d_backward(x, w, masked, *window, *needs, algorithm)
        for name, got, exp in zip(("dx", "dw", "db"), fused, want):
            if exp is None:
                assert got is None, f"{name} returned though not asked for"
            else:
                assert_same_bits(got, exp, f"{algorithm} {name} with y={needs}")
    if algorithm == "direct":  # test_winograd.py holds Winograd to its own bound
        fused = _C.conv2d_backward(x, w, dy, *window, True, True, True, algorithm, y=y)
        check_conv_backward(fused, x, w, masked, case.opts, f"{isa} fused mask: ")


def test_conv2d_backward_bias_and_mask_give_the_same_bits_at_1_and_2_threads():
    """Enough pixels that the mask-and-bias pass splits its blocks over threads."""
    case = ConvCase(16, 34, 34, 3, 3, 3, 64)
    x, w, b = case.inputs(9)
    y = K.conv2d(x, w, b, activation="relu")
    dy = np.random.default_rng(10).standard_normal(y.shape).astype(np.float32)
    window = (1, 1, "valid", 0, 0, 1, 1)
    runs = {}
    for n in (1, 2):
        with num_threads(n):
            runs[n] = [_C.conv2d_backward(x, w, dy, *window, False, True, True, y=given)
                       for given in (None, y)]
    for given in range(2):
        for name, a, b1 in zip(("dw", "db"), runs[2][given][1:], runs[1][given][1:]):
            assert_same_bits(a, b1, f"{name} (y given: {bool(given)}) at 2 threads against 1")
    masked = np.where(y > 0, dy, np.float32(0))
    want_db = masked.astype(np.float64).sum(axis=(0, 1, 2))
    magnitude = np.abs(masked).astype(np.float64).sum(axis=(0, 1, 2))
    assert_within(runs[1][1][2], want_db, sum_tolerance(magnitude, y[..., 0].size), "masked db")


def test_conv2d_backward_rejects_a_bad_y():
    x, w, _ = ConvCase(1, 5, 5, 2, 3, 3, 4).inputs()
    dy = np.ones((1, 3, 3, 4), np.float32)
    window = (1, 1, "valid", 0, 0, 1, 1)
    with pytest.raises(ValueError, match="argument 'y' must have the output's shape"):
        _C.conv2d_backward(x, w, dy, *window, True, True, True, y=np.ones((1, 3, 3, 3),
                                                                          np.float32))
    with pytest.raises(TypeError, match="argument 'y' must be float32"):
        _C.conv2d_backward(x, w, dy, *window, True, True, True, y=dy.astype(np.float64))
    with pytest.raises(TypeError, match="argument 'y' must be a float32 array or None"):
        _C.conv2d_backward(x, w, dy, *window, True, True, True, y=[1.0])


# ================================================================ threads

DETERMINISM_CASES = [ConvCase(4, 16, 16, 32, 3, 3, 64, padding="same"),
                     ConvCase(4, 16, 16, 3, 3, 3, 32, padding="same"),
                     ConvCase(4, 17, 15, 32, 3, 3, 33, stride=2, padding="same"),
                     ConvCase(4, 16, 16, 32, 3, 2, 64, padding=(2, 1), dilation=2),
                     ConvCase(4, 16, 16, 36, 3, 2, 64),
                     ConvCase(4, 16, 16, 64, 1, 1, 96)]  # 1x1: plain GEMMs
REPEATS = 25  # a race shows up in some calls only: several calls at 2 threads


@pytest.mark.parametrize("case", DETERMINISM_CASES, ids=str)
def test_conv2d_gives_the_same_bits_at_1_and_2_threads(isa, case):
    x, w, b = case.inputs(5)
    with num_threads(1):
        y = K.conv2d(x, w, b, **case.opts)
        dout = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
        one = (y,) + tuple(K.conv2d_backward(x, w, dout, **case.opts))
    assert_within(one[0], ref.conv2d_forward(x, w, b, **case.opts),
                  conv_forward_tolerance(x, w, b, case.opts), "forward at 1 thread")
    check_conv_backward(one[1:], x, w, dout, case.opts, "1 thread: ")
    with num_threads(2):
        for call in range(REPEATS):
            two = (K.conv2d(x, w, b, **case.opts),) + tuple(
                K.conv2d_backward(x, w, dout, **case.opts))
            for name, a, b1 in zip(("forward", "dx", "dw", "db"), two, one):
                assert_same_bits(a, b1, f"{name} at 2 threads (call {call + 1}) against 1")


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools_give_the_same_bits_at_1_and_2_threads(isa, kind):
    x = np.random.default_rng(8).standard_normal((8, 33, 31, 64)).astype(np.float32)
    fwd, bwd = getattr(K, f"{kind}_pool2d"), getattr(K, f"{kind}_pool2d_backward")
    with num_threads(1):
        y = fwd(x, 3, 2, "same")
        dy = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
        one = (y, bwd(x, dy, 3, 2, "same"))
    with num_threads(2):
        for call in range(REPEATS):
            two = (fwd(x, 3, 2, "same"), bwd(x, dy, 3, 2, "same"))
            for name, a, b1 in zip(("forward", "dx"), two, one):
                assert_same_bits(a, b1, f"{kind} pool {name} at 2 threads (call {call + 1}) "
                                        "against 1")


# ================================================================ autograd

@pytest.mark.parametrize("case", [ConvCase(3, 7, 6, 3, 3, 3, 7, padding="same"),
                                  ConvCase(1, 9, 8, 5, 2, 3, 12, stride=2, padding=(1, 0),
                                           dilation=(1, 2)),
                                  ConvCase(3, 6, 7, 5, 3, 3, 7, bias=False)], ids=str)
def test_f_conv2d_gives_the_kernels_values_and_gradients(isa, case):
    x, w, b = case.inputs(10)
    tensors = [t32(a) for a in (x, w, b) if a is not None]
    out = F.conv2d(*tensors, **case.opts)
    assert isinstance(out, fastnn.Tensor)
    assert_same_bits(out.numpy(), K.conv2d(x, w, b, **case.opts), "F.conv2d forward")
    dout = np.random.default_rng(11).standard_normal(out.shape).astype(np.float32)
    out.backward(dout)
    want = K.conv2d_backward(x, w, dout, **case.opts)
    for name, t, g in zip(("dx", "dw", "db"), tensors, want):
        assert t.grad is not None, f"{name}: no gradient"
        assert_same_bits(t.grad.numpy(), g, f"F.conv2d {name}")


@pytest.mark.parametrize("needs", [(True, False, False), (False, True, False),
                                   (False, False, True), (False, True, True)],
                         ids=["x", "w", "b", "w+b"])
def test_f_conv2d_computes_only_the_gradients_asked_for(needs):
    case = ConvCase(3, 8, 7, 5, 3, 3, 7, stride=2, padding="same")
    x, w, b = case.inputs(12)
    tensors = [t32(a, requires_grad=r) for a, r in zip((x, w, b), needs)]
    out = F.conv2d(*tensors, **case.opts)
    dout = np.random.default_rng(13).standard_normal(out.shape).astype(np.float32)
    out.backward(dout)
    want = K.conv2d_backward(x, w, dout, **case.opts)
    for name, t, g, need in zip(("dx", "dw", "db"), tensors, want, needs):
        if need:
            assert t.grad is not None, f"{name} requires grad but got none"
            assert_same_bits(t.grad.numpy(), g, name)
        else:
            assert t.grad is None, f"{name} does not require grad but got one"


@pytest.mark.parametrize("kind,pool_size,strides,padding", [
    ("max", 2, None, "valid"), ("max", 3, 2, "same"), ("avg", 3, 2, "same"),
    ("avg", (2, 3), 1, "valid")])
def test_conv_pool_sum_chain_gives_the_reference_gradient(isa, kind, pool_size, strides,
                                                           padding):
    case = ConvCase(2, 9, 9, 3, 3, 3, 8, padding="same")
    x, w, b = case.inputs(14)
    tx, tw, tb = t32(x), t32(w), t32(b)
    conv = F.conv2d(tx, tw, tb, **case.opts)
    pooled = getattr(F, f"{kind}_pool2d")(conv, pool_size, strides, padding)
    pooled.sum().backward()
    # the pool's routing depends on the float32 conv output that fastnn pooled
    y32 = K.conv2d(x, w, b, **case.opts)
    assert_same_bits(conv.numpy(), y32, "conv in the chain")
    ones = np.ones(getattr(ref, f"{kind}_pool2d_forward")(y32, pool_size, strides,
                                                          padding).shape)
    (dy,) = getattr(ref, f"{kind}_pool2d_backward")(ones, y32, pool_size, strides, padding)
    check_conv_backward([tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()], x, w, dy,
                        case.opts, f"{kind} chain ")


# ================================================================ finite differences

@pytest.mark.parametrize("case", [
    ConvCase(2, 5, 4, 3, 3, 3, 4, padding="same"),
    ConvCase(1, 6, 5, 2, 2, 3, 3, stride=2, padding=(1, 2), dilation=(2, 1)),
    ConvCase(2, 6, 7, 2, 3, 2, 3, stride=(2, 1)),
    ConvCase(1, 4, 5, 3, 2, 2, 2, stride=2, padding="same", bias=False),
], ids=str)
def test_f_conv2d_gradients_match_central_differences_of_the_reference(case):
    x, w, b = case.inputs(15)
    tensors = [t32(a) for a in (x, w, b) if a is not None]
    out = F.conv2d(*tensors, **case.opts)
    dout = np.random.default_rng(16).standard_normal(out.shape)
    out.backward(dout.astype(np.float32))
    arrays = [a.astype(np.float64) for a in (x, w, b) if a is not None]

    def objective():
        x64, w64, *b64 = arrays
        return float(np.sum(ref.conv2d_forward(x64, w64, *b64, **case.opts) * dout))

    numeric = central_differences(objective, arrays)
    for name, t, n in zip(("dx", "dw", "db"), tensors, numeric):
        assert_matches_differences(t.grad.numpy(), n, 1e-4, f"F.conv2d {name}")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,pool_size,strides,padding", [
    ((1, 5, 6, 3), 3, 2, "same"),
    ((2, 4, 5, 2), (2, 3), 1, "valid"),
    ((1, 5, 5, 2), 3, 1, "same"),
    ((1, 2, 3, 2), 3, None, "same"),
])
def test_f_pool_gradient_matches_central_differences_of_the_reference(
        kind, shape, pool_size, strides, padding):
    x = np.random.default_rng(17).standard_normal(shape).astype(np.float32)
    tx = t32(x)
    out = getattr(F, f"{kind}_pool2d")(tx, pool_size, strides, padding)
    dout = np.random.default_rng(18).standard_normal(out.shape)
    out.backward(dout.astype(np.float32))
    x64 = x.astype(np.float64)
    fwd = getattr(ref, f"{kind}_pool2d_forward")
    (numeric,) = central_differences(
        lambda: float(np.sum(fwd(x64, pool_size, strides, padding) * dout)), [x64])
    assert_matches_differences(tx.grad.numpy(), numeric, 1e-4, f"F.{kind}_pool2d dx")


# ================================================================ pooling against the reference

class PoolCase(NamedTuple):
    shape: tuple
    pool_size: object
    strides: object
    padding: str

    def __str__(self):
        return "x".join(map(str, self.shape)) + f"-p{self.pool_size}-s{self.strides}-{self.padding}"


P = PoolCase
POOL_CASES = [
    P((1, 4, 4, 1), 2, None, "valid"),
    P((3, 7, 5, 3), 2, None, "valid"),        # odd sizes: the last row/column dropped
    P((3, 7, 5, 3), 2, None, "same"),         # ... or padded after
    P((1, 9, 9, 64), 3, None, "valid"),
    P((1, 9, 8, 67), 3, 1, "same"),           # overlapping windows
    P((3, 6, 7, 3), 3, 2, "valid"),
    P((1, 6, 7, 67), 3, 2, "same"),
    P((1, 8, 8, 64), 2, 1, "valid"),
    P((1, 7, 9, 3), (2, 3), None, "valid"),
    P((3, 7, 9, 5), (2, 3), (1, 2), "same"),
    P((3, 5, 7, 1), (2, 3), (1, 2), "valid"),
    P((1, 7, 7, 3), 2, (1, 2), "same"),
    P((1, 5, 5, 1), 1, None, "valid"),        # the identity
    P((1, 5, 5, 3), 1, 2, "same"),            # subsampling
    P((1, 10, 11, 3), 2, 3, "valid"),         # stride past the window: cells skipped
    P((1, 10, 11, 3), 3, 3, "same"),
    P((1, 2, 2, 3), 3, None, "same"),         # inputs smaller than the window
    P((3, 1, 1, 5), 3, 1, "same"),
    P((1, 2, 3, 64), 3, 2, "same"),
    P((0, 4, 4, 3), 2, None, "valid"),        # empty batch
    P((1, 4, 4, 0), 2, None, "same"),         # no channels
]
del P
POOL_PARAMS = [pytest.param(c, id=str(c)) for c in POOL_CASES]


def _pool_data(shape, data, seed):
    rng = np.random.default_rng(seed)
    if data == "ties":
        return rng.integers(-1, 2, shape).astype(np.float32)  # three values: ties everywhere
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("data", ["normal", "ties"])
@pytest.mark.parametrize("case", POOL_PARAMS)
def test_max_pool2d_forward_and_gradient_match_reference_on_every_path(isa, case, data):
    x = _pool_data(case.shape, data, 20)
    args = (case.pool_size, case.strides, case.padding)
    y = K.max_pool2d(x, *args)
    want = ref.max_pool2d_forward(x, *args)
    assert_within(y, want, 0.0, f"max_pool2d on {isa}")  # a maximum is exact
    dy = np.random.default_rng(21).standard_normal(y.shape).astype(np.float32)
    dx = K.max_pool2d_backward(x, dy, *args)
    (want_dx,) = ref.max_pool2d_backward(dy, x, *args)
    (magnitude,) = ref.max_pool2d_backward(np.abs(dy), x, *args)
    kh, kw = _pair(case.pool_size)
    assert_within(dx, want_dx, sum_tolerance(magnitude, kh * kw), f"max_pool2d_backward on {isa}")
    # given the forward's output, the backward routes to the same cells
    window = fastnn._checks.pool_window(*args, "test")
    given_y = _C.max_pool2d_backward(x, dy, *window, y=y)
    assert_same_bits(given_y, dx, f"max_pool2d_backward(y=) on {isa}")


def test_max_pool2d_backward_given_y_routes_nan_and_ties_as_without():
    x = np.array([[1, 5, 5, 2], [np.nan, 0, 7, 7], [3, 3, 1, np.nan], [3, 3, np.nan, 2]],
                 np.float32).reshape(1, 4, 4, 1)
    y = K.max_pool2d(x, 2)
    dy = np.array([1, 2, 3, 4], np.float32).reshape(1, 2, 2, 1)
    want = np.array([[0, 0, 0, 0], [1, 0, 2, 0], [3, 0, 0, 4], [0, 0, 0, 0]],
                    np.float32).reshape(1, 4, 4, 1)
    for given in (None, y):
        got = _C.max_pool2d_backward(x, dy, 2, 2, 2, 2, "valid", y=given)
        assert_same_bits(got, want, f"max_pool2d_backward(y={'None' if given is None else 'y'})")


def test_max_pool2d_backward_rejects_a_bad_y():
    x = np.ones((1, 4, 4, 2), np.float32)
    dy = np.ones((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="argument 'y' must have the forward's output shape"):
        _C.max_pool2d_backward(x, dy, 2, 2, 2, 2, "valid", y=np.ones((1, 2, 2, 1), np.float32))
    with pytest.raises(TypeError, match="argument 'y' must be float32"):
        _C.max_pool2d_backward(x, dy, 2, 2, 2, 2, "valid", y=dy.astype(np.float64))
    with pytest.raises(TypeError, match="argument 'y' must be a float32 array or None"):
        _C.max_pool2d_backward(x, dy, 2, 2, 2, 2, "valid", y=3.0)


@pytest.mark.parametrize("case", POOL_PARAMS)
def test_avg_pool2d_forward_and_gradient_match_reference_on_every_path(isa, case):
    x = _pool_data(case.shape, "normal", 22)
    args = (case.pool_size, case.strides, case.padding)
    kh, kw = _pair(case.pool_size)
    y = K.avg_pool2d(x, *args)
    assert_within(y, ref.avg_pool2d_forward(x, *args),
                  sum_tolerance(ref.avg_pool2d_forward(np.abs(x), *args), kh * kw),
                  f"avg_pool2d on {isa}")
    dy = np.random.default_rng(23).standard_normal(y.shape).astype(np.float32)
    dx = K.avg_pool2d_backward(x, dy, *args)
    (want_dx,) = ref.avg_pool2d_backward(dy, x, *args)
    (magnitude,) = ref.avg_pool2d_backward(np.abs(dy), x, *args)
    assert_within(dx, want_dx, sum_tolerance(magnitude, kh * kw), f"avg_pool2d_backward on {isa}")


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_f_pools_give_the_kernels_values_and_gradients(isa, kind):
    x = np.random.default_rng(24).standard_normal((3, 7, 8, 5)).astype(np.float32)
    tx = t32(x)
    out = getattr(F, f"{kind}_pool2d")(tx, 3, (2, 1), "same")
    assert_same_bits(out.numpy(), getattr(K, f"{kind}_pool2d")(x, 3, (2, 1), "same"),
                     f"F.{kind}_pool2d forward")
    dy = np.random.default_rng(25).standard_normal(out.shape).astype(np.float32)
    out.backward(dy)
    assert_same_bits(tx.grad.numpy(),
                     getattr(K, f"{kind}_pool2d_backward")(x, dy, 3, (2, 1), "same"),
                     f"F.{kind}_pool2d dx")


def test_pool_strides_default_to_the_pool_size():
    x = np.random.default_rng(26).standard_normal((2, 9, 8, 3)).astype(np.float32)
    for fn in (K.max_pool2d, K.avg_pool2d):
        assert_same_bits(fn(x, (3, 2)), fn(x, (3, 2), (3, 2)), fn.__name__)
        assert fn(x, (3, 2)).shape == (2, 3, 4, 3)


# ================================================================ pooling semantics by hand

def _img(rows):
    """A (1, H, W, 1) float32 image from a list of rows."""
    return np.asarray(rows, dtype=np.float32)[None, :, :, None]


def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(isa):
    g = np.array([[[[2.0]]]], np.float32)
    dx = K.max_pool2d_backward(_img([[1, 1], [1, 1]]), g, 2)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[2, 0], [0, 0]])
    dx = K.max_pool2d_backward(_img([[0, 5], [5, 1]]), g, 2)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 2], [0, 0]])
    dx = K.max_pool2d_backward(_img([[0, 1], [3, 3]]), g, 2)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 0], [2, 0]])


def test_max_pool_overlapping_windows_add_their_gradients(isa):
    x = _img([[1, 1, 1], [1, 1, 1]])  # windows at columns 0-1 and 1-2: first maxima (0,0), (0,1)
    dy = np.array([3.0, 5.0], np.float32).reshape(1, 1, 2, 1)
    dx = K.max_pool2d_backward(x, dy, 2, 1)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3, 5, 0], [0, 0, 0]])
    x = _img([[0, 9, 0], [0, 0, 0]])  # both windows pick the same cell
    dx = K.max_pool2d_backward(x, dy, 2, 1)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 8, 0], [0, 0, 0]])


def test_max_pool_padding_never_wins(isa):
    x = -_img([[1, 2, 3], [4, 5, 6], [7, 8, 9]])  # all negative: a padded 0 would win
    y = K.max_pool2d(x, 2, 2, "same")
    np.testing.assert_array_equal(y[0, :, :, 0], [[-1, -3], [-7, -9]])
    dx = K.max_pool2d_backward(x, np.ones_like(y), 2, 2, "same")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    x = np.full((1, 2, 2, 3), -np.inf, np.float32)  # a real -inf still beats the padding
    x[0, 1, 1, 1] = -5
    dx = K.max_pool2d_backward(x, np.ones((1, 1, 1, 3), np.float32), 3, None, "same")
    assert dx.sum() == 3 and dx[0, 1, 1, 1] == 1, dx[0, :, :, :].transpose(2, 0, 1)
    np.testing.assert_array_equal(K.max_pool2d(x, 3, None, "same")[0, 0, 0], [-np.inf, -5,
                                                                               -np.inf])


def test_avg_pool_counts_only_real_cells(isa):
    x = _img([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    y = K.avg_pool2d(x, 3, 1, "same")[0, :, :, 0]
    # corner: (1 + 2 + 4 + 5) / 4, not / 9; edge: (1 + ... + 6) / 6; centre: all nine
    np.testing.assert_allclose(y, [[3, 3.5, 4], [4.5, 5, 5.5], [6, 6.5, 7]], rtol=1e-6)
    y = K.avg_pool2d(x, 2, 2, "same")[0, :, :, 0]  # padding after: the last window is one cell
    np.testing.assert_allclose(y, [[3, 4.5], [7.5, 9]], rtol=1e-6)
    dx = K.avg_pool2d_backward(x, np.ones((1, 2, 2, 1), np.float32), 2, 2, "same")
    np.testing.assert_allclose(dx[0, :, :, 0], [[.25, .25, .5], [.25, .25, .5], [.5, .5, 1]],
                               rtol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_of_an_input_smaller_than_the_window_under_same(isa, kind):
    x = np.array([[[[1.5, -2.0]]]], np.float32)  # (1, 1, 1, 2)
    y = getattr(K, f"{kind}_pool2d")(x, 3, None, "same")
    assert_same_bits(y, x, f"{kind} pool of one cell")
    dy = np.array([[[[0.25, 4.0]]]], np.float32)
    assert_same_bits(getattr(K, f"{kind}_pool2d_backward")(x, dy, 3, None, "same"), dy,
                     f"{kind} pool backward of one cell")


# ================================================================ bad input

X = np.zeros((1, 5, 5, 3), np.float32)
W = np.zeros((3, 3, 3, 4), np.float32)

# (name, call, exception, substrings that the message must hold). `call`
# takes the function family: kernels or functional, wrapping arrays as needed.
CONV_ERRORS = [
    ("x rank 3", lambda f, T: f.conv2d(T(X[0]), T(W)), ValueError, ["'x'", "(5, 5, 3)"]),
    ("x rank 5", lambda f, T: f.conv2d(T(X[None]), T(W)), ValueError, ["(1, 1, 5, 5, 3)"]),
    ("w rank 3", lambda f, T: f.conv2d(T(X), T(W[0])), ValueError, ["'w'", "(3, 3, 4)"]),
    ("channels", lambda f, T: f.conv2d(T(X), T(np.zeros((3, 3, 2, 4), np.float32))),
     ValueError, ["(1, 5, 5, 3)", "(3, 3, 2, 4)"]),
    ("kernel > valid input", lambda f, T: f.conv2d(T(X), T(np.zeros((7, 3, 3, 4), np.float32))),
     ValueError, ["(1, 5, 5, 3)", "(7, 3, 3, 4)"]),
    ("dilated kernel > valid input", lambda f, T: f.conv2d(T(X), T(W), dilation=3),
     ValueError, ["(1, 5, 5, 3)", "(3, 3, 3, 4)"]),
    ("kernel > explicitly padded input",
     lambda f, T: f.conv2d(T(X), T(np.zeros((9, 3, 3, 4), np.float32)), padding=1),
     ValueError, ["(1, 5, 5, 3)", "(9, 3, 3, 4)"]),
    ("stride 0", lambda f, T: f.conv2d(T(X), T(W), stride=0), ValueError, ["stride", "0"]),
    ("stride (1, 0)", lambda f, T: f.conv2d(T(X), T(W), stride=(1, 0)), ValueError, ["stride"]),
    ("stride -1", lambda f, T: f.conv2d(T(X), T(W), stride=-1), ValueError, ["stride", "-1"]),
    ("dilation 0", lambda f, T: f.conv2d(T(X), T(W), dilation=0), ValueError, ["dilation"]),
    ("padding -1", lambda f, T: f.conv2d(T(X), T(W), padding=-1), ValueError, ["padding", "-1"]),
    ("padding (0, -2)", lambda f, T: f.conv2d(T(X), T(W), padding=(0, -2)), ValueError,
     ["padding", "-2"]),
    ("padding 'full'", lambda f, T: f.conv2d(T(X), T(W), padding="full"), ValueError,
     ["padding", "full"]),
    ("bias shape", lambda f, T: f.conv2d(T(X), T(W), T(np.zeros(5, np.float32))), ValueError,
     ["'b'", "(5,)"]),
    ("activation", lambda f, T: f.conv2d(T(X), T(W), activation="swish"), ValueError,
     ["activation", "swish"]),
]

POOL_ERRORS = [
    ("x rank 3", lambda f, T: f.max_pool2d(T(X[0])), ValueError, ["'x'", "(5, 5, 3)"]),
    ("avg x rank 2", lambda f, T: f.avg_pool2d(T(X[0, 0])), ValueError, ["'x'", "(5, 3)"]),
    ("pool > valid input", lambda f, T: f.max_pool2d(T(X), 6), ValueError,
     ["(1, 5, 5, 3)"]),
    ("avg pool > valid input", lambda f, T: f.avg_pool2d(T(X), (2, 7)), ValueError,
     ["(1, 5, 5, 3)"]),
    ("pool size 0", lambda f, T: f.max_pool2d(T(X), 0), ValueError, ["pool_size"]),
    ("strides 0", lambda f, T: f.avg_pool2d(T(X), 2, 0), ValueError, ["strides"]),
    ("explicit padding", lambda f, T: f.max_pool2d(T(X), 2, None, 1), ValueError, ["padding"]),
    ("padding 'full'", lambda f, T: f.avg_pool2d(T(X), 2, None, "full"), ValueError,
     ["padding"]),
]

TYPE_ERRORS = [
    ("string x", lambda f, T: f.conv2d(np.full((1, 5, 5, 3), "a"), T(W)), ["'x'"]),
    ("string w", lambda f, T: f.conv2d(T(X), np.full((3, 3, 3, 4), "a")), ["'w'"]),
    ("object x", lambda f, T: f.conv2d(np.full((1, 5, 5, 3), None), T(W)), ["'x'"]),
    ("stride 1.5", lambda f, T: f.conv2d(T(X), T(W), stride=1.5), ["stride"]),
    ("padding 1.0", lambda f, T: f.conv2d(T(X), T(W), padding=1.0), ["padding"]),
    ("string pool x", lambda f, T: f.max_pool2d(np.full((1, 5, 5, 3), "a")), ["'x'"]),
    ("string avg pool x", lambda f, T: f.avg_pool2d(np.full((1, 5, 5, 3), "a")), ["'x'"]),
    ("pool size 2.0", lambda f, T: f.avg_pool2d(T(X), 2.0), ["pool_size"]),
]


def _family(name):
    if name == "kernels":
        return K, lambda a: a
    return F, lambda a: fastnn.tensor(a, requires_grad=True)


FAMILIES = ["kernels", "functional"]


def _raises(exc, call, family, parts):
    f, T = _family(family)
    with pytest.raises(exc) as info:
        call(f, T)
    msg = str(info.value)
    missing = [p for p in parts if p not in msg]
    assert not missing, f"the message {msg!r} does not name {missing}"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name,call,exc,parts", [pytest.param(*e, id=e[0])
                                                 for e in CONV_ERRORS + POOL_ERRORS])
def test_bad_shapes_and_values_raise_naming_them(family, name, call, exc, parts):
    _raises(exc, call, family, parts)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name,call,parts", [pytest.param(*e, id=e[0]) for e in TYPE_ERRORS])
def test_non_numeric_input_raises_type_error(family, name, call, parts):
    _raises(TypeError, call, family, parts)


@pytest.mark.parametrize("name,call,parts", [
    ("conv dy shape", lambda: K.conv2d_backward(X, W, np.zeros((1, 3, 3, 5), np.float32)),
     ["'dy'", "(1, 3, 3, 4)", "(1, 3, 3, 5)"]),
    ("conv dy rank", lambda: K.conv2d_backward(X, W, np.zeros((3, 3, 4), np.float32)),
     ["'dy'", "(3, 3, 4)"]),
    ("conv backward channels",
     lambda: K.conv2d_backward(X, np.zeros((3, 3, 2, 4), np.float32),
                               np.zeros((1, 3, 3, 4), np.float32)),
     ["(1, 5, 5, 3)", "(3, 3, 2, 4)"]),
    ("max pool dy shape",
     lambda: K.max_pool2d_backward(X, np.zeros((1, 2, 2, 4), np.float32), 2),
     ["'dy'", "(1, 2, 2, 3)", "(1, 2, 2, 4)"]),
    ("avg pool dy shape",
     lambda: K.avg_pool2d_backward(X, np.zeros((1, 3, 3, 3), np.float32), 2, None, "valid"),
     ["'dy'", "(1, 2, 2, 3)", "(1, 3, 3, 3)"]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_backward_with_a_mismatched_gradient_raises_naming_the_shapes(name, call, parts):
    with pytest.raises(ValueError) as info:
        call()
    missing = [p for p in parts if p not in str(info.value)]
    assert not missing, f"the message {str(info.value)!r} does not name {missing}"
