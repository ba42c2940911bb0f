"""The convolution and pooling kernels of fastnn._C_cuda (csrc/cuda/conv2d.cu,
pool2d.cu) against the CPU kernels of fastnn._C on the same float32 arrays,
with the same arguments.

Tolerances: a convolution output is a float32 sum of many products, added
in another order on each device, so each element is checked within a small
multiple of float32 rounding of the sum of the magnitudes of its terms
(the same convolution of |x|, |w|, |dy|, computed by the CPU kernel). Max
pooling forward selects a value: bit for bit, NaN included. Its backward
routes each window's gradient to one cell: with ties, a cell chosen
differently shows as an error of the size of the gradient. Averages get a
tight tolerance.

Every test needs a GPU and is skipped without one.
"""
import itertools
import zlib

import numpy as np
import pytest

from fastnn import _C, cuda

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU available")

if cuda.is_built():
    from fastnn import _C_cuda as G
else:
    G = None

EPS32 = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------- helpers

def dev(x):
    """A float32 copy of x on the GPU."""
    return G.DeviceArray.from_numpy(np.asarray(x, dtype=np.float32))


def host(d):
    """The float32 contents of a DeviceArray."""
    assert isinstance(d, G.DeviceArray)
    out = d.numpy()
    assert out.dtype == np.float32
    return out


def normal(rng, shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


def small_ints(rng, shape, lo=-2, hi=2):
    """Integers as float32: windows full of ties."""
    return np.asarray(rng.integers(lo, hi + 1, size=shape), dtype=np.float32)


def seed(*args):
    """A seed from the test's parameters, the same in every process."""
    return zlib.crc32(repr(args).encode())


def assert_close_to_terms(got, expected, terms, what, factor=64.0):
    """|got - expected| <= factor * eps32 * terms per element, terms being the
    sum of the magnitudes the element adds up: float32 rounding in any order
    stays well inside that, a wrong or missing term does not. Where the
    expected value is NaN or infinite, the same value."""
    expected = np.asarray(expected, dtype=np.float32)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    if expected.size == 0:
        return
    special = ~np.isfinite(expected)
    np.testing.assert_array_equal(got[special], expected[special], err_msg=what)
    got, expected, terms = got[~special], expected[~special], terms[~special]
    tol = factor * EPS32 * terms.astype(np.float64) + 1e-30
    err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    worst = np.unravel_index(np.argmax(err - tol), err.shape)
    assert np.all(err <= tol), (
        f"{what}: at {worst} got {got[worst]!r}, expected {expected[worst]!r} "
        f"(error {err[worst]:.3g}, tolerance {tol[worst]:.3g})")


def assert_bits_equal(a, b, what):
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), f"{what}: runs differ"


# ---------------------------------------------------------------- convolution

# (N, C, F): batch 1 and 3, channels 1/3/5/64, filters 1/7/33/64
CONV_CHANNELS = [(1, 1, 1), (3, 3, 7), (1, 5, 33), (3, 64, 64), (1, 3, 64), (3, 64, 1),
                 (1, 64, 33), (3, 5, 1)]
KERNELS = [(1, 1), (3, 3), (5, 5), (2, 3)]
STRIDES = [(1, 1), (2, 2), (3, 3), (1, 2)]
DILATIONS = [(1, 1), (2, 2), (1, 2)]
PADDINGS = [("valid", 0, 0), ("same", 0, 0), ("explicit", 1, 2), ("explicit", 0, 1)]


def check_conv(rng, n, h, w, c, f, kernel, stride, dilation, padding, bias=True, relu=False):
    """Forward and all gradients on the GPU against the CPU kernels. When
    the CPU refuses the shapes (window larger than a 'valid' input), the GPU
    must refuse them too, with a ValueError."""
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    mode, ph, pw = padding
    x = normal(rng, (n, h, w, c))
    wt = normal(rng, (kh, kw, c, f))
    b = normal(rng, (f,)) if bias else None
    geo = (sh, sw, mode, ph, pw, dh, dw)
    try:
        y = _C.conv2d(x, wt, b, *geo, relu)
    except ValueError:
        with pytest.raises(ValueError, match=r"conv2d: .*'x' of shape"):
            G.conv2d(dev(x), dev(wt), None if b is None else dev(b), *geo, relu)
        return
    b_abs = None if b is None else np.abs(b)
    y_terms = _C.conv2d(np.abs(x), np.abs(wt), b_abs, *geo, False)
    got = host(G.conv2d(dev(x), dev(wt), None if b is None else dev(b), *geo, relu))
    ctx = f"x {x.shape} w {wt.shape} stride {stride} dilation {dilation} padding {padding}"
    assert_close_to_terms(got, y, y_terms, f"conv2d forward, {ctx}")

    dy = normal(rng, y.shape)
    dx, dwt, db = _C.conv2d_backward(x, wt, dy, *geo, True, True, True)
    tx, tw, tb = _C.conv2d_backward(np.abs(x), np.abs(wt), np.abs(dy), *geo, True, True, True)
    gdx, gdw, gdb = G.conv2d_backward(dev(x), dev(wt), dev(dy), *geo, True, True, True)
    assert_close_to_terms(host(gdx), dx, tx, f"conv2d dx, {ctx}")
    assert_close_to_terms(host(gdw), dwt, tw, f"conv2d dw, {ctx}")
    assert_close_to_terms(host(gdb), db, tb, f"conv2d db, {ctx}")


@pytest.mark.parametrize("padding", PADDINGS, ids=lambda p: f"{p[0]}{p[1]}{p[2]}")
@pytest.mark.parametrize("dilation", DILATIONS, ids=lambda d: f"d{d[0]}x{d[1]}")
@pytest.mark.parametrize("stride", STRIDES, ids=lambda s: f"s{s[0]}x{s[1]}")
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"k{k[0]}x{k[1]}")
@pytest.mark.parametrize("channels", CONV_CHANNELS, ids=lambda t: f"n{t[0]}c{t[1]}f{t[2]}")
def test_conv2d_matches_cpu(channels, kernel, stride, dilation, padding):
    n, c, f = channels
    rng = np.random.default_rng(seed(channels, kernel, stride, dilation, padding))
    check_conv(rng, n, 7, 9, c, f, kernel, stride, dilation, padding,
               bias=f % 2 == 1, relu=c % 2 == 1)


@pytest.mark.parametrize("hw", [(1, 1), (2, 1), (3, 4)])
@pytest.mark.parametrize("kernel", [(5, 5), (2, 3), (3, 3)])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 1)])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 2)])
def test_conv2d_input_smaller_than_kernel_same(hw, kernel, stride, dilation):
    rng = np.random.default_rng(7)
    check_conv(rng, 3, hw[0], hw[1], 5, 7, kernel, stride, dilation, ("same", 0, 0), relu=True)


@pytest.mark.parametrize("shape", [
    # (N, H, W, C, F, kernel, stride, dilation, padding): several tiles of
    # 64 pixels / channels / filters, K past one slice, many pixel chunks
    # in the weight gradient
    (3, 32, 32, 16, 32, (3, 3), (1, 1), (1, 1), ("same", 0, 0)),
    (2, 19, 23, 96, 130, (3, 3), (2, 2), (1, 1), ("same", 0, 0)),
    (4, 16, 16, 3, 70, (5, 5), (1, 1), (2, 2), ("explicit", 3, 1)),
    (1, 40, 33, 130, 5, (1, 1), (1, 1), (1, 1), ("valid", 0, 0)),
    (8, 12, 12, 64, 64, (2, 3), (3, 2), (1, 1), ("valid", 0, 0)),
], ids=lambda s: f"n{s[0]}h{s[1]}w{s[2]}c{s[3]}f{s[4]}")
def test_conv2d_larger_shapes_match_cpu(shape):
    n, h, w, c, f, kernel, stride, dilation, padding = shape
    check_conv(np.random.default_rng(11), n, h, w, c, f, kernel, stride, dilation, padding,
               relu=True)


def test_conv2d_backward_returns_only_what_is_asked():
    rng = np.random.default_rng(3)
    x, wt = normal(rng, (2, 6, 5, 3)), normal(rng, (3, 3, 3, 4))
    geo = (1, 1, "same", 0, 0, 1, 1)
    dy = normal(rng, (2, 6, 5, 4))
    for need in itertools.product([False, True], repeat=3):
        got = G.conv2d_backward(dev(x), dev(wt), dev(dy), *geo, *need)
        expected = _C.conv2d_backward(x, wt, dy, *geo, *need)
        assert len(got) == 3
        for g, e, asked in zip(got, expected, need):
            assert (g is None) == (not asked) and (e is None) == (not asked)
            if asked:
                assert host(g).shape == e.shape


def test_conv2d_backward_masks_dy_by_the_fused_relus_output():
    """y= (the fused ReLU's output) gives the gradients of dy * (y > 0), as on the CPU."""
    rng = np.random.default_rng(4)
    x, wt, b = normal(rng, (2, 7, 6, 5)), normal(rng, (3, 3, 5, 8)), normal(rng, (8,))
    geo = (1, 1, "same", 0, 0, 1, 1)
    y = host(G.conv2d(dev(x), dev(wt), dev(b), *geo, True))
    assert (y > 0).any() and (y == 0).any()
    dy = normal(rng, y.shape)
    got = G.conv2d_backward(dev(x), dev(wt), dev(dy), *geo, True, True, True, y=dev(y))
    plain = G.conv2d_backward(dev(x), dev(wt), dev(np.where(y > 0, dy, np.float32(0))), *geo,
                              True, True, True)
    for g, e in zip(got, plain):
        np.testing.assert_array_equal(host(g), host(e))
    with pytest.raises(ValueError, match="argument 'y' must have the shape of 'dy'"):
        G.conv2d_backward(dev(x), dev(wt), dev(dy), *geo, True, True, True, y=dev(x))


def test_conv2d_empty_batch_and_zero_filters():
    rng = np.random.default_rng(5)
    geo = (1, 1, "same", 0, 0, 1, 1)
    for n, f in [(0, 4), (2, 0)]:
        x, wt = normal(rng, (n, 5, 5, 3)), normal(rng, (3, 3, 3, f))
        y = G.conv2d(dev(x), dev(wt), None, *geo, False)
        assert host(y).shape == (n, 5, 5, f)
        dy = np.zeros((n, 5, 5, f), np.float32)
        dx, dwt, db = G.conv2d_backward(dev(x), dev(wt), dev(dy), *geo, True, True, True)
        np.testing.assert_array_equal(host(dx), np.zeros(x.shape, np.float32))
        np.testing.assert_array_equal(host(dwt), np.zeros(wt.shape, np.float32))
        np.testing.assert_array_equal(host(db), np.zeros((f,), np.float32))


def test_conv2d_is_deterministic():
    # many pixels per weight-gradient element: the chunked reduction path
    rng = np.random.default_rng(9)
    x, wt = normal(rng, (8, 24, 24, 32)), normal(rng, (3, 3, 32, 48))
    b = normal(rng, (48,))
    geo = (1, 1, "same", 0, 0, 1, 1)
    X, W, B = dev(x), dev(wt), dev(b)
    dy = dev(normal(rng, (8, 24, 24, 48)))
    runs = []
    for _ in range(2):
        y = host(G.conv2d(X, W, B, *geo, True))
        grads = [host(g) for g in G.conv2d_backward(X, W, dy, *geo, True, True, True)]
        runs.append([y] + grads)
    for what, a, b2 in zip(["y", "dx", "dw", "db"], runs[0], runs[1]):
        assert_bits_equal(a, b2, what)


def test_conv2d_argument_errors():
    rng = np.random.default_rng(1)
    x, wt = dev(normal(rng, (1, 5, 5, 3))), dev(normal(rng, (3, 3, 3, 2)))
    with pytest.raises(TypeError, match="conv2d: argument 'x' must be a DeviceArray"):
        G.conv2d(np.zeros((1, 5, 5, 3), np.float32), wt, None, 1, 1, "valid", 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match=r"conv2d: the kernel of shape \(3, 3, 4, 2\) takes 4"):
        G.conv2d(x, dev(np.zeros((3, 3, 4, 2))), None, 1, 1, "valid", 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match=r"conv2d: argument 'b' must have shape \(2,\)"):
        G.conv2d(x, wt, dev(np.zeros(3)), 1, 1, "valid", 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match="conv2d: argument 'padding' must be"):
        G.conv2d(x, wt, None, 1, 1, "full", 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match="conv2d: argument 'stride' must be >= 1"):
        G.conv2d(x, wt, None, 0, 1, "valid", 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match=r"conv2d_backward: argument 'dy' must have the "
                                         r"output's shape \(1, 3, 3, 2\)"):
        G.conv2d_backward(x, wt, dev(np.zeros((1, 5, 5, 2))), 1, 1, "valid", 0, 0, 1, 1,
                          True, True, True)


# ---------------------------------------------------------------- pooling

POOLS = [(2, 2), (3, 3), (2, 3), (1, 1)]
POOL_STRIDES = [(1, 1), (2, 2), (3, 3), (1, 2), (2, 3)]


def check_pools(x, pool, stride, padding):
    kh, kw = pool
    sh, sw = stride
    args = (kh, kw, sh, sw, padding)
    ctx = f"x {x.shape} pool {pool} stride {stride} {padding}"
    rng = np.random.default_rng(x.size)
    X = dev(x)

    y = _C.max_pool2d(x, *args)
    got = host(G.max_pool2d(X, *args))
    assert got.shape == y.shape, ctx
    np.testing.assert_array_equal(got, y, err_msg=f"max_pool2d forward, {ctx}")
    dy = normal(rng, y.shape)
    dx = _C.max_pool2d_backward(x, dy, *args)
    terms = _C.avg_pool2d_backward(x, np.abs(dy), *args) * kh * kw  # >= the |dy| each cell adds
    got = host(G.max_pool2d_backward(X, dev(dy), *args))
    assert_close_to_terms(got, dx, terms, f"max_pool2d backward, {ctx}", factor=16.0)
    np.testing.assert_array_equal(host(G.max_pool2d_backward(X, dev(dy), *args, y=dev(y))),
                                  got, err_msg=f"max_pool2d backward given y, {ctx}")

    y = _C.avg_pool2d(x, *args)
    terms = _C.avg_pool2d(np.abs(x), *args)
    assert_close_to_terms(host(G.avg_pool2d(X, *args)), y, terms, f"avg_pool2d forward, {ctx}",
                          factor=16.0)
    dx = _C.avg_pool2d_backward(x, dy, *args)
    terms = _C.avg_pool2d_backward(x, np.abs(dy), *args)
    assert_close_to_terms(host(G.avg_pool2d_backward(X, dev(dy), *args)), dx, terms,
                          f"avg_pool2d backward, {ctx}", factor=16.0)


@pytest.mark.parametrize("values", ["normal", "ties"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", POOL_STRIDES, ids=lambda s: f"s{s[0]}x{s[1]}")
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"p{p[0]}x{p[1]}")
@pytest.mark.parametrize("shape", [(1, 7, 9, 1), (2, 8, 8, 3), (1, 6, 11, 33), (2, 1, 2, 5)],
                         ids=lambda s: "x" + "x".join(map(str, s)))
def test_pools_match_cpu(shape, pool, stride, padding, values):
    rng = np.random.default_rng(seed(shape, pool, stride, padding, values))
    x = normal(rng, shape) if values == "normal" else small_ints(rng, shape)
    try:
        _C.max_pool2d(x, *pool, *stride, padding)
    except ValueError:  # window larger than a "valid" input: both refuse
        with pytest.raises(ValueError, match=r"max_pool2d: .*'x' of shape"):
            G.max_pool2d(dev(x), *pool, *stride, padding)
        return
    check_pools(x, pool, stride, padding)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pool_nan_and_infinity(padding):
    rng = np.random.default_rng(2)
    x = small_ints(rng, (2, 7, 8, 3))
    x[0, 1, 1, 0] = np.nan
    x[0, 1, 2, 0] = np.nan  # the first NaN of a window takes its gradient
    x[1, 4, 4, 1] = -np.inf
    x[1, 2:5, 2:5, 2] = -np.inf  # a window of -inf only
    for pool, stride in [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((2, 3), (1, 2))]:
        check_pools(x, pool, stride, padding)


def test_pools_are_deterministic():
    rng = np.random.default_rng(4)
    x = dev(small_ints(rng, (4, 33, 31, 40)))
    for pool, stride in [((3, 3), (1, 1)), ((3, 3), (2, 2))]:
        args = (*pool, *stride, "same")
        dy = dev(normal(rng, G.max_pool2d(x, *args).shape))
        for fwd, bwd in [(G.max_pool2d, G.max_pool2d_backward),
                         (G.avg_pool2d, G.avg_pool2d_backward)]:
            first = host(fwd(x, *args)), host(bwd(x, dy, *args))
            second = host(fwd(x, *args)), host(bwd(x, dy, *args))
            assert_bits_equal(first[0], second[0], fwd.__name__)
            assert_bits_equal(first[1], second[1], bwd.__name__)


def test_pool_argument_errors():
    x = dev(np.zeros((1, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="max_pool2d: argument 'padding' must be 'valid' or "
                                         "'same' for a pool, got 'explicit'"):
        G.max_pool2d(x, 2, 2, 2, 2, "explicit")
    with pytest.raises(ValueError, match=r"avg_pool2d: argument 'x' must be 4-D"):
        G.avg_pool2d(dev(np.zeros((4, 4, 2))), 2, 2, 2, 2, "valid")
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argument 'dy' must have the "
                                         r"forward's output shape \(1, 2, 2, 2\)"):
        G.max_pool2d_backward(x, dev(np.zeros((1, 4, 4, 2))), 2, 2, 2, 2, "valid")
    with pytest.raises(TypeError, match="avg_pool2d_backward: argument 'dy' must be a "
                                        "DeviceArray"):
        G.avg_pool2d_backward(x, np.zeros((1, 2, 2, 2), np.float32), 2, 2, 2, 2, "valid")
