"""Argument fuzzing of every public kernel (fastnn.kernels) and the
functional ops over them: shapes with 0, 1, primes and large sizes; strides,
paddings and dilations good and bad; dtypes; non-contiguous, transposed and
negative-stride views; NaN and Inf. Each call must give the reference's
result (float64 NumPy, tests/reference/) or raise ValueError / TypeError,
never anything else. .ci/sanitize runs this file under ASan and UBSan, where
a read or write outside a buffer ends the run."""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import functional as F
from fastnn import kernels as K
from reference import conv as ref_conv
from reference import gemm as ref_gemm
from reference import rnn as ref_rnn

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

pytestmark = pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning",
                                        "ignore::RuntimeWarning")

SIZES = st.sampled_from([0, 1, 1, 2, 3, 5, 7, 13])        # 0, 1 and primes
LARGE = st.sampled_from([1, 2, 31, 67, 131])               # one long axis per case
# window arguments: mostly good, some hostile (0, negative, enormous, wrong type)
GOOD_WINDOW = st.sampled_from([1, 1, 2, 3, (1, 2), (3, 1)])
BAD_WINDOW = st.sampled_from([0, -1, (2, 0), (1, -3), 2**31, 2**63, 2**64, 1.5, True, "2",
                              (1, 2, 3), None])
GOOD_PADDING = st.sampled_from(["valid", "same", 0, 1, 2, (0, 1), (2, 0)])
BAD_PADDING = st.sampled_from([-1, (1, -1), 2**31, 2**62, "full", 1.0, (1,), None])
# dtypes the public entry points convert (the result is the float32
# computation on the converted values) and dtypes they must refuse
GOOD_DTYPES = ["float32", "float32", "float64", "float16", "int32", "bool"]
BAD_DTYPES = ["complex64", "object", "datetime64[s]", "U3"]
LAYOUTS = ["contiguous", "strided", "reversed", "fortran"]


class Hostile(Exception):
    """Marks a drawn argument that the call must refuse."""


def _window(draw, good=GOOD_WINDOW):
    """(value, ok) of a stride / dilation / pool size."""
    if draw(st.integers(0, 5)) == 0:
        return draw(BAD_WINDOW), False
    return draw(good), True


def _padding(draw, explicit=True):
    if draw(st.integers(0, 5)) == 0:
        return draw(BAD_PADDING), False
    if explicit:
        return draw(GOOD_PADDING), True
    return draw(st.sampled_from(["valid", "same", "VALID"])), True


def _array(draw, shape, scale=1.0):
    """(array, ok, finite): values in [-scale, scale] as float32 (rounded),
    in some dtype and memory layout; sometimes with NaN/Inf, sometimes in a
    dtype that must be refused."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = (rng.uniform(-scale, scale, size=shape)).astype(np.float32)
    finite = True
    if base.size and draw(st.integers(0, 7)) == 0:
        flat = base.reshape(-1)
        for v in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=1,
                               max_size=3)):
            flat[rng.integers(0, flat.size)] = v
        finite = False
    if draw(st.integers(0, 11)) == 0:
        dtype = draw(st.sampled_from(BAD_DTYPES))
        try:
            return base.astype(dtype), False, finite
        except (TypeError, ValueError):
            return base.astype(object), False, finite
    dtype = draw(st.sampled_from(GOOD_DTYPES))
    if dtype != "float32":
        base = base.astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    if layout == "strided":          # every other element of a bigger array
        big = np.zeros(tuple(2 * s for s in shape), dtype=base.dtype)
        view = big[tuple(slice(None, None, 2) for _ in shape)]
        view[...] = base
        base = view
    elif layout == "reversed" and base.ndim:   # a negative-stride view of the same values
        axis = draw(st.integers(0, base.ndim - 1))
        flipped = np.flip(base, axis).copy()
        base = np.flip(flipped, axis)
    elif layout == "fortran":
        base = np.asfortranarray(base)
    return base, True, finite


def _f32_values(a):
    """The float32 values a computation on array a sees."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def check(call, reference, ok, finite, tol_scale=None):
    """Runs call(): with ok False (a hostile argument was drawn) it must raise
    ValueError or TypeError. Otherwise the reference decides: when it fails
    (the arguments do not fit), call() must raise ValueError; when it gives
    results, call() gives the same shapes, and the same values to float32
    rounding when all inputs are finite (or, where a result is empty, a
    ValueError). Where NumPy itself fails inside the reference (degenerate
    empty shapes), call() may return or raise ValueError. Results are tuples
    of arrays."""
    if not ok:
        with pytest.raises((ValueError, TypeError)):
            call()
        return
    try:
        want = reference()
    except (AssertionError, ZeroDivisionError):  # the window does not fit
        with pytest.raises(ValueError):
            call()
        return
    except ValueError:  # NumPy inside the reference, on degenerate (empty) shapes
        try:
            call()
        except ValueError:
            pass
        return
    want = want if isinstance(want, tuple) else (want,)
    if any(w is not None and np.size(w) == 0 for w in want):
        try:  # empty results; an image of height or width 0 may also be refused
            got = call()
        except ValueError:
            return
    else:
        got = call()
    got = got if isinstance(got, tuple) else (got,)
    scales = tol_scale() if (finite and tol_scale) else [None] * len(want)
    assert len(got) == len(want)
    for i, (g, w, s) in enumerate(zip(got, want, scales)):
        if w is None:
            continue
        g = g.numpy() if isinstance(g, fastnn.Tensor) else g
        assert isinstance(g, np.ndarray) and g.dtype == np.float32, (i, type(g))
        assert g.shape == np.shape(w), f"result {i}: shape {g.shape}, want {np.shape(w)}"
        if finite:
            # s = (the result on absolute values, the length of the sums):
            # float32 rounding as in reference/gemm.py's gemm_tolerance
            tol = 1e-5 * (1 + np.abs(w)) if s is None else \
                2e-6 * (4 + 2 * np.sqrt(s[1])) * s[0] + 1e-6
            err = np.abs(g.astype(np.float64) - w)
            assert np.all(err <= tol), (
                f"result {i}: max error {np.max(err - tol, initial=0):.3g} above the tolerance")


# ---------------------------------------------------------------- gemm
@FUZZ
@given(st.data())
def test_gemm(data):
    draw = data.draw
    m, n = draw(SIZES), draw(SIZES)
    k = draw(st.one_of(SIZES, LARGE))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    a, ok_a, fa = _array(draw, (k, m) if trans_a else (m, k))
    b, ok_b, fb = _array(draw, (n, k) if trans_b else (k, n))
    alpha = draw(st.sampled_from([1.0, -0.5, 0.0, 2]))
    beta = draw(st.sampled_from([0.0, 1.0, 0.5]))
    c_kind = draw(st.sampled_from(["none", "good", "good", "readonly", "wrong_shape", "float64",
                                   "strided"]))
    c = None
    ok_c = True
    if c_kind != "none":
        shape = (m, n + 1) if c_kind == "wrong_shape" else (m, n)
        c = np.full(shape, 0.25, dtype=np.float64 if c_kind == "float64" else np.float32)
        if c_kind == "readonly":
            c.flags.writeable = False
        if c_kind == "strided":
            c = np.full((m, 2 * n), 0.25, dtype=np.float32)[:, ::2]
        # an empty strided view counts as C-contiguous, rightly
        ok_c = c_kind == "good" or (c_kind == "strided" and c.flags.c_contiguous)
    c_before = None if c is None else np.array(c, dtype=np.float64)
    check(lambda: K.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c),
          lambda: ref_gemm.gemm(_f32_values(a), _f32_values(b), trans_a, trans_b, alpha,
                                beta if c is not None else 0.0, c_before),
          ok_a and ok_b and ok_c, fa and fb,
          lambda: [(ref_gemm.gemm_error_scale(_f32_values(a), _f32_values(b), trans_a, trans_b,
                                              alpha, beta if c is not None else 0.0, c_before),
                    k)])


# ---------------------------------------------------------------- convolution
def _conv_case(draw):
    n, c, f = draw(SIZES), draw(SIZES), draw(SIZES)
    h, w = draw(st.one_of(SIZES, LARGE)), draw(SIZES)
    kh, kw = draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 3, 4]))
    stride, ok_s = _window(draw)
    dilation, ok_d = _window(draw, st.sampled_from([1, 1, 2, (1, 3)]))
    padding, ok_p = _padding(draw)
    x, ok_x, fx = _array(draw, (n, h, w, c))
    wt, ok_w, fw = _array(draw, (kh, kw, c, f), scale=0.5)
    return (x, wt, stride, padding, dilation, ok_s and ok_d and ok_p and ok_x and ok_w,
            fx and fw, kh * kw * c)


@FUZZ
@given(st.data())
def test_conv2d(data):
    draw = data.draw
    x, w, stride, padding, dilation, ok, finite, taps = _conv_case(draw)
    with_bias = draw(st.booleans())
    b = np.linspace(-1, 1, w.shape[3], dtype=np.float32) if with_bias else None
    functional = draw(st.booleans())

    def call():
        if functional:
            return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
        return K.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)

    check(call,
          lambda: ref_conv.conv2d_forward(_f32_values(x), _f32_values(w), b, stride, padding,
                                          dilation),
          ok, finite,
          lambda: [(ref_conv.conv2d_forward(np.abs(_f32_values(x)), np.abs(_f32_values(w)),
                                            None if b is None else np.abs(b), stride, padding,
                                            dilation), taps)])


@FUZZ
@given(st.data())
def test_conv2d_backward(data):
    draw = data.draw
    x, w, stride, padding, dilation, ok, finite, taps = _conv_case(draw)
    try:
        out_shape = ref_conv.conv2d_forward(_f32_values(x), _f32_values(w), None, stride, padding,
                                            dilation).shape
    except Exception:  # the arguments do not fit: any dy will do, the call must refuse
        out_shape = (1, 1, 1, 1)
    dy, ok_dy, fdy = _array(draw, out_shape)
    if draw(st.integers(0, 6)) == 0 and dy.size:  # a dy of the wrong shape
        dy, ok_dy = dy[:, :-1], False if dy.shape[1] else ok_dy

    def reference():
        return ref_conv.conv2d_backward(_f32_values(dy), _f32_values(x), _f32_values(w), stride,
                                        padding, dilation)

    def scales():
        gx, gw, gb = ref_conv.conv2d_backward(np.abs(_f32_values(dy)), np.abs(_f32_values(x)),
                                              np.abs(_f32_values(w)), stride, padding, dilation)
        return [(gx, w.shape[3] * w.shape[0] * w.shape[1]),
                (gw, max(1, dy.shape[0] * dy.shape[1] * dy.shape[2])),
                (gb, max(1, dy.shape[0] * dy.shape[1] * dy.shape[2]))]

    check(lambda: K.conv2d_backward(x, w, dy, stride=stride, padding=padding, dilation=dilation),
          reference, ok and ok_dy, finite and fdy, scales)


# ---------------------------------------------------------------- pooling
@FUZZ
@given(st.data(), st.sampled_from(["max", "avg"]), st.booleans())
def test_pool2d(data, kind, backward):
    draw = data.draw
    n, c = draw(SIZES), draw(SIZES)
    h, w = draw(st.one_of(SIZES, LARGE)), draw(SIZES)
    pool, ok_k = _window(draw, st.sampled_from([1, 2, 3, (2, 3)]))
    strides = None
    ok_s = True
    if draw(st.booleans()):
        strides, ok_s = _window(draw)
        if strides is None:
            ok_s = True  # None means "the pool size"
    padding, ok_p = _padding(draw, explicit=False)
    x, ok_x, fx = _array(draw, (n, h, w, c))
    ok = ok_k and ok_s and ok_p and ok_x
    pad = padding.lower() if isinstance(padding, str) else padding
    forward_ref = getattr(ref_conv, f"{kind}_pool2d_forward")
    backward_ref = getattr(ref_conv, f"{kind}_pool2d_backward")
    if not backward:
        functional = draw(st.booleans())
        fn = getattr(F if functional else K, f"{kind}_pool2d")
        check(lambda: fn(x, pool_size=pool, strides=strides, padding=padding),
              lambda: forward_ref(_f32_values(x), pool, strides, pad), ok,
              fx and kind == "avg")  # max: NaN ordering is the kernel's own
        return
    try:
        out_shape = forward_ref(_f32_values(x), pool, strides, pad).shape
    except Exception:
        out_shape = (1, 1, 1, 1)
    dy, ok_dy, fdy = _array(draw, out_shape)
    fn = getattr(K, f"{kind}_pool2d_backward")
    check(lambda: fn(x, dy, pool_size=pool, strides=strides, padding=padding),
          lambda: backward_ref(_f32_values(dy), _f32_values(x), pool, strides, pad),
          ok and ok_dy, fx and fdy)


# ---------------------------------------------------------------- LSTM and GRU
def _rnn_case(draw, gates, reset_after=False, cell=False):
    b, t, i, h = draw(SIZES), draw(st.one_of(SIZES, LARGE)), draw(SIZES), draw(SIZES)
    hb = draw(st.sampled_from([h, h, h, h + 1]))   # sometimes a w_h that does not fit
    x, ok_x, fx = _array(draw, (b, i) if cell else (b, t, i))
    w_x, ok_wx, fwx = _array(draw, (i, gates * h), scale=0.5)
    w_h, ok_wh, fwh = _array(draw, (hb, gates * h), scale=0.5)
    bias, ok_b, fb = _array(draw, (2, gates * h) if reset_after else (gates * h,), scale=0.5)
    h0, ok_h, fh = (None, True, True) if (not cell and draw(st.booleans())) else \
        _array(draw, (b, h))
    ok = ok_x and ok_wx and ok_wh and ok_b and ok_h and hb == h
    return x, h0, w_x, w_h, bias, ok, fx and fwx and fwh and fb and fh


def _rnn_compare(got, want):
    """RNN results are bounded by the gates' saturation: absolute tolerance."""
    for g, w in zip(got, want):
        if w is None:
            continue
        assert g.shape == np.shape(w), (g.shape, np.shape(w))
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-4)


def _rnn_check(call, reference, ok, finite):
    if not ok:
        with pytest.raises((ValueError, TypeError)):
            call()
        return
    got = call()
    assert all(isinstance(g, np.ndarray) and g.dtype == np.float32 for g in got)
    if finite:
        _rnn_compare(got, reference())


@FUZZ
@given(st.data(), st.sampled_from(["lstm", "gru", "gru_reset_after"]), st.booleans())
def test_rnn_sequence(data, cell, backward):
    draw = data.draw
    reset_after = cell == "gru_reset_after"
    gates = 4 if cell == "lstm" else 3
    x, h0, w_x, w_h, b, ok, finite = _rnn_case(draw, gates, reset_after)
    c0 = None
    if cell == "lstm" and h0 is not None:
        c0, ok_c, fc = _array(draw, h0.shape)
        ok, finite = ok and ok_c, finite and fc
    f32 = _f32_values
    if cell == "lstm":
        def forward():
            return K.lstm(x, h0, c0, w_x, w_h, b)

        def forward_ref():
            return ref_rnn.lstm_forward(f32(x), None if h0 is None else f32(h0),
                                        None if c0 is None else f32(c0), f32(w_x), f32(w_h),
                                        f32(b))
    else:
        def forward():
            return K.gru(x, h0, w_x, w_h, b, reset_after=reset_after)

        def forward_ref():
            return ref_rnn.gru_forward(f32(x), None if h0 is None else f32(h0), f32(w_x),
                                       f32(w_h), f32(b), reset_after)
    if not backward:
        _rnn_check(forward, lambda: forward_ref()[0], ok, finite)
        return
    B, T = x.shape[0], x.shape[1]
    H = w_x.shape[1] // gates
    dout, ok_d, fd = _array(draw, (B, T, H))
    dh, ok_dh, fdh = _array(draw, (B, H))
    if cell == "lstm":
        def call():
            return K.lstm_backward(x, h0, c0, w_x, w_h, b, dout, dh)

        def reference():
            return ref_rnn.lstm_backward(f32(dout), f32(dh), None, forward_ref()[1])
    else:
        def call():
            return K.gru_backward(x, h0, w_x, w_h, b, dout, dh, reset_after=reset_after)

        def reference():
            return ref_rnn.gru_backward(f32(dout), f32(dh), forward_ref()[1])
    _rnn_check(call, reference, ok and ok_d and ok_dh, finite and fd and fdh)


@FUZZ
@given(st.data(), st.sampled_from(["lstm", "gru"]), st.sampled_from(["kernel", "functional",
                                                                     "backward"]))
def test_rnn_cell(data, cell, kind):
    draw = data.draw
    gates = 4 if cell == "lstm" else 3
    x, h, w_x, w_h, b, ok, finite = _rnn_case(draw, gates, cell=True)
    f32 = _f32_values
    dh, ok_dh, fdh = _array(draw, (x.shape[0], w_x.shape[1] // gates))
    if cell == "lstm":
        c, ok_c, fc = _array(draw, h.shape)
        ok, finite = ok and ok_c, finite and fc
        args = (x, h, c, w_x, w_h, b)
        ref_forward = ref_rnn.lstm_cell_forward(*map(f32, args)) if ok and finite else None
    else:
        args = (x, h, w_x, w_h, b)
        ref_forward = ref_rnn.gru_cell_forward(*map(f32, args)) if ok and finite else None
    if kind == "backward":
        if cell == "lstm":
            _rnn_check(lambda: K.lstm_cell_backward(*args, dh),
                       lambda: ref_rnn.lstm_cell_backward(f32(dh), None, ref_forward[1]),
                       ok and ok_dh, finite and fdh)
        else:
            _rnn_check(lambda: K.gru_cell_backward(*args, dh),
                       lambda: ref_rnn.gru_cell_backward(f32(dh), ref_forward[1]),
                       ok and ok_dh, finite and fdh)
        return
    fn = getattr(F if kind == "functional" else K, f"{cell}_cell")

    def call():
        out = fn(*args)
        out = out if isinstance(out, tuple) else (out,)
        return tuple(v.numpy() if kind == "functional" else v for v in out)
    want = (lambda: ref_forward[0]) if cell == "lstm" else (lambda: (ref_forward[0],))
    _rnn_check(call, want, ok, finite)


# ---------------------------------------------------------------- functional ops
@FUZZ
@given(st.data(), st.sampled_from(["relu", "sigmoid", "tanh", "softmax", "log_softmax"]))
def test_activations_forward_and_backward(data, name):
    draw = data.draw
    shape = tuple(draw(st.lists(st.one_of(SIZES, LARGE), min_size=1, max_size=3)))
    x, ok, finite = _array(draw, shape, scale=4.0)
    fn = getattr(F, name)

    def call():
        t = fastnn.tensor(x, requires_grad=True) if x.dtype.kind == "f" else fastnn.tensor(x)
        y = fn(t)
        if t.requires_grad and y.numpy().size:
            y.sum().backward()
            return y.numpy(), t.grad.numpy()
        return y.numpy(), None

    v = _f32_values(x) if ok else None

    def reference():
        from reference import ops as ref_ops
        y = getattr(ref_ops, f"{name}_forward")(v)
        grad = getattr(ref_ops, f"{name}_backward")(np.ones_like(y), v)[0] \
            if x.dtype.kind == "f" and y.size else None
        return y, grad
    check(call, reference, ok, finite, lambda: [(np.abs(r) + 1, 4) if r is not None else None
                                                for r in reference()])


@FUZZ
@given(st.data())
def test_linear(data):
    draw = data.draw
    n, i, o = draw(SIZES), draw(st.one_of(SIZES, LARGE)), draw(SIZES)
    x, ok_x, fx = _array(draw, (n, i))
    w, ok_w, fw = _array(draw, (i, o) if draw(st.integers(0, 5)) else (i + 1, o))
    ok = ok_x and ok_w and w.shape[0] == i
    check(lambda: F.linear(x, w).numpy(),
          lambda: _f32_values(x) @ _f32_values(w), ok, fx and fw,
          lambda: [(np.abs(_f32_values(x)) @ np.abs(_f32_values(w)), i)])


@FUZZ
@given(st.data())
def test_cross_entropy_labels(data):
    draw = data.draw
    n, k = draw(SIZES), draw(SIZES)
    logits, ok, finite = _array(draw, (n, k), scale=3.0)
    labels = np.array(draw(st.lists(st.integers(-2, k + 1), min_size=n, max_size=n)),
                      dtype=draw(st.sampled_from(["int64", "int32", "float32"])))
    ok = ok and labels.dtype.kind == "i" and bool(np.all((labels >= 0) & (labels < k)))

    def call():
        return np.asarray(F.cross_entropy(logits, labels).numpy(), dtype=np.float32)
    if not ok:
        check(call, None, False, finite)
    elif n == 0:  # the mean of an empty batch: NaN, as NumPy's and PyTorch's
        assert np.isnan(call())
    elif finite:
        from reference import ops as ref_ops
        want = ref_ops.cross_entropy_forward(_f32_values(logits), labels)
        np.testing.assert_allclose(call(), want, rtol=1e-5, atol=1e-5)
    else:
        call()
