"""Winograd convolution (csrc/cpu/winograd.cpp) and the choice of algorithm:
fastnn.kernels.conv2d / conv2d_backward with algorithm="winograd2" (F(2x2,3x3)),
"winograd4" (F(4x4,3x3)), "winograd", "auto", and FASTNN_CONV_ALGORITHM.

Error bound. Winograd computes each m x m output tile from (m+2)^2
transformed products, so an output's rounding error scales with the
largest output of its tile, not with its own magnitude (a cell whose true
value is 0, such as one that sees only padding, gets the rounding noise of
its neighbours), and with the transform coefficients, which grow with m
(at most 1 for m = 2; up to 8 in A and 5 in B for m = 4). The bound checked
here, for an output summing `terms` products:

    |error| <= eps32 * GROWTH[m] * (4 + 2 sqrt(terms)) * max over the tile of sum |a||b|

with GROWTH = {2: 2, 4: 16}: the direct path's model (tests/test_conv.py)
times that growth. On these shapes the measured errors stay below a tenth
of it: about 0.15x the direct path's bound for m = 2 and 1.3x for m = 4.
For the weight gradient the tile is the 3x3 filter of one (c, f) pair.
"""
import math

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads
from fastnn import kernels as K
from reference import conv as ref
from reference.checks import assert_within

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)
GROWTH = {2: 2.0, 4: 16.0}
TILES = [pytest.param(2, id="F2x2"), pytest.param(4, id="F4x4")]


def tile_max(a, m):
    """Each element of the NHWC array a replaced by the largest of its m x m
    tile (tiles start at row and column 0)."""
    n, h, w, c = a.shape
    th, tw = -(-h // m), -(-w // m)
    p = np.zeros((n, th * m, tw * m, c))
    p[:, :h, :w] = a
    t = p.reshape(n, th, m, tw, m, c).max(axis=(2, 4), keepdims=True)
    return np.broadcast_to(t, (n, th, m, tw, m, c)).reshape(n, th * m, tw * m, c)[:, :h, :w]


def bound(magnitude, terms, m):
    return EPS32 * GROWTH[m] * (4.0 + 2.0 * math.sqrt(terms)) * magnitude + TINY32


def winograd_tolerances(x, w, dy, padding, m):
    """Tolerances for (y, dx, dw) of a 3x3 stride-1 convolution."""
    n, oh, ow, f = dy.shape
    c = x.shape[3]
    mag_y = ref.conv2d_forward(np.abs(x), np.abs(w), padding=padding)
    mag_dx, mag_dw, _ = ref.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), padding=padding)
    return (bound(tile_max(mag_y, m), 9 * c, m), bound(tile_max(mag_dx, m), 9 * f, m),
            bound(mag_dw.max(axis=(0, 1), keepdims=True), n * oh * ow, m))


# (N, H, W, C, F, padding): odd and tiny maps, one channel, channel counts
# off the vector width, padding valid / same / 1 / 3 (wider than the window
# reaches: whole tiles of padding), more channels than one K block
SHAPES = [
    (2, 13, 13, 5, 7, "valid"),
    (1, 7, 7, 16, 33, "same"),
    (3, 4, 4, 1, 3, 1),
    (2, 13, 13, 17, 20, "same"),
    (1, 6, 6, 64, 40, 3),
    (1, 5, 9, 3, 2, 2),
    (2, 3, 3, 4, 5, "valid"),
    (1, 1, 1, 6, 2, "same"),
    (1, 5, 5, 400, 12, "same"),
    (8, 37, 35, 8, 8, "same"),  # several weight-gradient blocks of tiles
]


def shape_id(s):
    return "x".join(map(str, s[:5])) + f"-{s[5]}"


def random_case(shape, seed=0):
    n, h, w, c, f, padding = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    y = ref.conv2d_forward(x, wt, b, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return x, wt, b, dy, padding


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_winograd_forward_and_gradients_match_the_float64_reference(isa, m, shape):
    x, w, b, dy, padding = random_case(shape)
    algo = f"winograd{m}"
    tol_y, tol_dx, tol_dw = winograd_tolerances(x, w, dy, padding, m)
    y = K.conv2d(x, w, b, padding=padding, algorithm=algo)
    assert_within(y, ref.conv2d_forward(x, w, b, padding=padding), tol_y, f"{isa} {algo}: y",
                  dtype=np.float32)
    dx, dw, db = K.conv2d_backward(x, w, dy, padding=padding, algorithm=algo)
    want_dx, want_dw, want_db = ref.conv2d_backward(dy, x, w, padding=padding)
    assert_within(dx, want_dx, tol_dx, f"{isa} {algo}: dx", dtype=np.float32)
    assert_within(dw, want_dw, tol_dw, f"{isa} {algo}: dw", dtype=np.float32)
    n, oh, ow, _ = dy.shape
    assert_within(db, want_db, bound(np.abs(dy).sum(axis=(0, 1, 2)), n * oh * ow, 2),
                  f"{isa} {algo}: db", dtype=np.float32)


@pytest.mark.parametrize("m", TILES)
def test_winograd_fuses_bias_and_relu_exactly(isa, m):
    x, w, b, _, padding = random_case((2, 9, 11, 12, 19, "same"), seed=3)
    algo = f"winograd{m}"
    plain = K.conv2d(x, w, padding=padding, algorithm=algo)
    fused = K.conv2d(x, w, b, padding=padding, activation="relu", algorithm=algo)
    want = np.maximum(plain + b, np.float32(0))
    assert fused.tobytes() == want.tobytes(), "bias + ReLU in the output transform"


@pytest.mark.parametrize("m", TILES)
def test_winograd_gradients_match_central_differences(m):
    x, w, b, _, padding = random_case((1, 5, 6, 2, 3, 1), seed=5)
    g = np.random.default_rng(6).standard_normal(
        ref.conv2d_forward(x, w, b, padding=padding).shape)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)

    def objective():
        return float((ref.conv2d_forward(x64, w64, b, padding=padding) * g).sum())

    num_dx, num_dw = [], []
    for a, out in ((x64, num_dx), (w64, num_dw)):
        grad = np.empty(a.shape)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + 1e-6
            up = objective()
            a[idx] = orig - 1e-6
            down = objective()
            a[idx] = orig
            grad[idx] = (up - down) / 2e-6
        out.append(grad)
    dx, dw, _ = K.conv2d_backward(x, w, g.astype(np.float32), padding=padding,
                                  algorithm=f"winograd{m}")
    # float32 gradients against float64 differences (h = 1e-6: about 1e-9 off)
    np.testing.assert_allclose(dx, num_dx[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, num_dw[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize("shape", [(6, 17, 15, 24, 40, "same"), (8, 37, 35, 8, 8, "same")],
                         ids=shape_id)
def test_winograd_gives_the_same_bits_at_1_and_2_threads(isa, m, shape):
    # enough tiles for several blocks per thread (the weight gradient's
    # blocks hold up to 512 tiles: the second shape has several)
    x, w, b, dy, padding = random_case(shape, seed=7)
    algo = f"winograd{m}"
    results = []
    for n in (1, 2):
        with num_threads(n):
            y = K.conv2d(x, w, b, padding=padding, activation="relu", algorithm=algo)
            results.append((y,) + K.conv2d_backward(x, w, dy, padding=padding, algorithm=algo))
    for name, one, two in zip(("y", "dx", "dw", "db"), *results):
        assert one.tobytes() == two.tobytes(), f"{isa} {algo}: {name} differs at 2 threads"


def test_winograd_runs_the_tile_size_it_chose(isa):
    x, w, b, dy, padding = random_case((2, 12, 12, 32, 32, "same"), seed=8)
    y = K.conv2d(x, w, b, padding=padding, algorithm="winograd")
    candidates = [K.conv2d(x, w, b, padding=padding, algorithm=f"winograd{m}") for m in (2, 4)]
    assert any(y.tobytes() == c.tobytes() for c in candidates)
    assert y.tobytes() != K.conv2d(x, w, b, padding=padding, algorithm="direct").tobytes()


def test_auto_is_within_the_winograd_bound_and_f_conv2d_uses_it(isa):
    x, w, b, dy, padding = random_case((4, 15, 15, 32, 64, "valid"), seed=9)
    tol_y, tol_dx, tol_dw = winograd_tolerances(x, w, dy, padding, 4)
    y = K.conv2d(x, w, b, padding=padding)
    assert_within(y, ref.conv2d_forward(x, w, b, padding=padding), tol_y, "auto: y",
                  dtype=np.float32)
    xt = fastnn.tensor(x, requires_grad=True)
    wt = fastnn.tensor(w, requires_grad=True)
    out = F.conv2d(xt, wt, fastnn.tensor(b), padding=padding)
    assert out.numpy().tobytes() == y.tobytes(), "F.conv2d runs the kernel's auto choice"
    (out * fastnn.tensor(dy)).sum().backward()
    dx, dw, _ = K.conv2d_backward(x, w, dy, padding=padding)
    assert xt.grad.numpy().tobytes() == dx.tobytes()
    assert wt.grad.numpy().tobytes() == dw.tobytes()
    want_dx, want_dw, _ = ref.conv2d_backward(dy, x, w, padding=padding)
    assert_within(dx, want_dx, tol_dx, "auto: dx", dtype=np.float32)
    assert_within(dw, want_dw, tol_dw, "auto: dw", dtype=np.float32)


def test_environment_variable_forces_an_algorithm(monkeypatch):
    x, w, b, dy, padding = random_case((2, 10, 10, 16, 16, "same"), seed=10)
    for name in ("direct", "winograd", "winograd2", "winograd4"):
        want = K.conv2d(x, w, b, padding=padding, algorithm=name)
        want_grads = K.conv2d_backward(x, w, dy, padding=padding, algorithm=name)
        monkeypatch.setenv("FASTNN_CONV_ALGORITHM", name)
        assert K.conv2d(x, w, b, padding=padding).tobytes() == want.tobytes(), name
        for got, exp in zip(K.conv2d_backward(x, w, dy, padding=padding), want_grads):
            assert got.tobytes() == exp.tobytes(), name
        monkeypatch.delenv("FASTNN_CONV_ALGORITHM")
    # Winograd forced process-wide leaves other windows to the direct path
    monkeypatch.setenv("FASTNN_CONV_ALGORITHM", "winograd")
    w5 = np.ones((5, 5, 16, 4), np.float32)
    assert K.conv2d(x, w5).tobytes() == K.conv2d(x, w5, algorithm="direct").tobytes()
    assert K.conv2d(x, w, stride=2).tobytes() == K.conv2d(x, w, stride=2,
                                                          algorithm="direct").tobytes()
    monkeypatch.setenv("FASTNN_CONV_ALGORITHM", "fastest")
    with pytest.raises(ValueError, match="FASTNN_CONV_ALGORITHM"):
        K.conv2d(x, w)


def test_bad_algorithms_are_refused():
    x, w, b, dy, padding = random_case((1, 6, 6, 2, 3, "valid"))
    with pytest.raises(ValueError, match="argument 'algorithm'.*'fast'"):
        K.conv2d(x, w, algorithm="fast")
    with pytest.raises(ValueError, match="argument 'algorithm'"):
        K.conv2d_backward(x, w, dy, algorithm="Winograd")
    with pytest.raises(TypeError, match="argument 'algorithm'"):
        K.conv2d(x, w, algorithm=None)
    with pytest.raises(ValueError, match="argument 'algorithm'.*3x3.*stride"):
        K.conv2d(x, w, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match="argument 'algorithm'.*5x5"):
        K.conv2d(x, np.ones((5, 5, 2, 3), np.float32), algorithm="winograd4")
