"""The convolution's backward through the ReLU and max pool that follow it
in one pass: the kernel _C._conv2d_pool_backward, and the autograd ops that
use it (F.max_pool2d hands its gradient over unmade, as an
autograd.Deferred, to an F.conv2d(..., activation="relu") right before it).

Checked against the float64 reference of the three backwards composed
(pool, ReLU, convolution) within the float32 error model of test_conv.py,
on every SIMD path, at 1 and 2 threads (bit-identical), and against the
unfused autograd chain; bad arguments name themselves.
"""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads
from fastnn import _C
from fastnn._backend import CPU
from reference import conv as ref
from test_conv import ConvCase, assert_same_bits, assert_within, conv_backward_tolerances


def pool_pair(k):
    return (k, k) if isinstance(k, int) else tuple(k)


def pooled_case(case, k, seed, algorithm="auto"):
    """x, w, the ReLU convolution's output y, its max pool p of k (or (kh,
    kw)) windows, a gradient dp of p, and the convolution's window as _C
    takes it."""
    kh, kw = pool_pair(k)
    x, w, b = case.inputs(seed)
    w = (w / np.sqrt(case.kh * case.kw * case.c)).astype(np.float32)  # half the outputs > 0
    window = fastnn._checks.conv_window(case.stride, case.padding, case.dilation, "test")
    y = _C.conv2d(x, w, b, *window, True, algorithm)
    p = _C.max_pool2d(y, kh, kw, kh, kw, "valid")
    dp = np.random.default_rng(seed + 1).standard_normal(p.shape).astype(np.float32)
    return x, w, y, p, dp, window


def composed_gradient(y, p, dp, k):
    """The convolution's output gradient: dp routed to each window's first
    maximum (float64 reference), then masked by the ReLU (y > 0)."""
    (dy,) = ref.max_pool2d_backward(dp.astype(np.float64), y.astype(np.float64), pool_pair(k),
                                    pool_pair(k), "valid")
    return np.where(y > 0, dy, 0.0)


CASES = [
    (ConvCase(3, 32, 32, 3, 3, 3, 32), 2, "direct"),  # conv1: dw by rows, nothing written out
    (ConvCase(2, 17, 15, 3, 3, 3, 20, padding="same"), 2, "direct"),  # odd maps, padded copy
    (ConvCase(2, 12, 11, 5, 3, 3, 17), 3, "direct"),  # 3x3 pool, leftover row and column
    (ConvCase(2, 13, 14, 4, 3, 3, 18), (2, 3), "direct"),  # windows wider than high
    (ConvCase(2, 13, 14, 4, 3, 3, 18), (3, 1), "direct"),
    (ConvCase(2, 21, 20, 3, 3, 2, 9, stride=2), 2, "direct"),  # by rows at stride 2
    (ConvCase(2, 18, 19, 2, 3, 3, 8, dilation=2, padding="same"), 2, "direct"),
    (ConvCase(2, 12, 12, 24, 1, 1, 40), 2, "direct"),  # 1x1: a GEMM
    (ConvCase(2, 15, 15, 32, 3, 3, 64), 2, "winograd4"),  # conv2: Winograd, dy written out
    (ConvCase(2, 6, 6, 64, 3, 3, 128), 2, "auto"),  # conv3
    (ConvCase(2, 9, 8, 24, 3, 3, 40, stride=2, padding="same"), 2, "direct"),
]
NEEDS = [(True, True, True), (False, True, True), (False, True, False), (True, False, False),
         (False, False, True), (True, True, False)]


@pytest.mark.parametrize("case,k,algorithm", CASES, ids=str)
def test_conv2d_pool_backward_is_the_three_backwards_composed(isa, threads, case, k, algorithm):
    kh, kw = pool_pair(k)
    x, w, y, p, dp, window = pooled_case(case, k, 3, algorithm)
    assert (p > 0).any() and (p <= 0).any(), "the test needs windows on both sides of the ReLU"
    dy = composed_gradient(y, p, dp, k)
    for needs in NEEDS:
        got = _C._conv2d_pool_backward(x, w, y, p, dp, kh, kw, *window, *needs, algorithm)
        for name, g, need in zip(("dx", "dw", "db"), got, needs):
            assert (g is None) == (not need), f"{name}: asked for {need}, got {g is not None}"
        if algorithm == "direct":  # test_winograd.py bounds Winograd's error
            wants = ref.conv2d_backward(dy, x, w, **case.opts)
            tols = conv_backward_tolerances(x, w, dy, case.opts)
            for name, g, want, tol in zip(("dx", "dw", "db"), got, wants, tols):
                if g is not None:
                    assert_within(g, want, tol, f"{isa} {needs} {name}")
        else:  # Winograd: against the unfused kernels, given the same dy
            want = _C.conv2d_backward(x, w, dy.astype(np.float32), *window, *needs, algorithm)
            for name, g, exp in zip(("dx", "dw", "db"), got, want):
                if g is not None:
                    assert np.abs(g - exp).max() <= 1e-5 * np.abs(exp).max(), name


def test_conv2d_pool_backward_of_a_pool_larger_than_the_map_is_zero():
    x, w, y, _, _, window = pooled_case(ConvCase(2, 5, 5, 2, 3, 3, 4), 2, 4)
    empty = np.zeros((2, 0, 0, 4), np.float32)  # a 5x5 pool of the 3x3 output
    for needs in NEEDS[:2]:
        dx, dw, db = _C._conv2d_pool_backward(x, w, y, empty, empty, 5, 5, *window, *needs)
        assert not dw.any() and not db.any() and (dx is None or not dx.any())


@pytest.mark.parametrize("case,k,algorithm", CASES[:6] + CASES[8:9], ids=str)
def test_conv2d_pool_backward_gives_the_same_bits_at_1_and_2_threads(case, k, algorithm):
    x, w, y, p, dp, window = pooled_case(case._replace(n=8), k, 5, algorithm)
    runs = {}
    for n in (1, 2):
        with num_threads(n):
            runs[n] = [_C._conv2d_pool_backward(x, w, y, p, dp, *pool_pair(k), *window, need_dx,
                                                True, True, algorithm) for need_dx in (True, False)]
    for a, b in zip(runs[1], runs[2]):
        for name, g1, g2 in zip(("dx", "dw", "db"), a, b):
            if g1 is not None:
                assert_same_bits(g2, g1, f"{name} at 2 threads against 1")


def test_conv2d_pool_backward_passes_nothing_through_nan_or_non_positive_maxima():
    case = ConvCase(1, 6, 6, 3, 3, 3, 4, bias=False)
    x, w, y, p, dp, window = pooled_case(case, 2, 7)
    y = np.zeros_like(y)  # every window's maximum is 0: the ReLU passes no gradient
    y[0, 0, 0, 0] = np.nan
    p = _C.max_pool2d(y, 2, 2, 2, 2, "valid")
    _, dw, db = _C._conv2d_pool_backward(x, w, y, p, dp, 2, 2, *window, False, True, True)
    assert not dw.any() and not db.any()


def test_conv2d_pool_backward_names_a_bad_argument():
    x, w, y, p, dp, window = pooled_case(ConvCase(1, 8, 8, 2, 3, 3, 4), 2, 9)
    call = _C._conv2d_pool_backward
    with pytest.raises(ValueError, match=r"argument 'p' must have shape \(1, 3, 3, 4\)"):
        call(x, w, y, p[:, :2], dp, 2, 2, *window, True, True, True)
    with pytest.raises(ValueError, match=r"argument 'dp' must have shape \(1, 3, 3, 4\)"):
        call(x, w, y, p, dp[..., :3], 2, 2, *window, True, True, True)
    with pytest.raises(ValueError, match=r"argument 'y' must have shape \(1, 6, 6, 4\)"):
        call(x, w, y[:, 1:], p, dp, 2, 2, *window, True, True, True)
    with pytest.raises(ValueError, match="pool window must be at least 1x1"):
        call(x, w, y, p, dp, 0, 2, *window, True, True, True)
    with pytest.raises(TypeError, match="argument 'dp' must be float32"):
        call(x, w, y, p, dp.astype(np.float64), 2, 2, *window, True, True, True)


# ================================================================ autograd

@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls to the fused backward."""
    calls = []
    kernel = CPU.conv2d_pool_backward

    def counted(*args):
        calls.append(args[5:7])
        return kernel(*args)
    monkeypatch.setattr(CPU, "conv2d_pool_backward", staticmethod(counted))
    return calls


def chain_gradients(case, pool, relu_inside, extra=None, seed=11):
    """Gradients of sum(c * max_pool(relu(conv(x)))) [+ extra(conv output)]
    for x, w, b, with the ReLU fused into the convolution or a separate op."""
    x, w, b = case.inputs(seed)
    tx, tw, tb = (fastnn.tensor(a, requires_grad=True) for a in (x, w / 5, b))
    if relu_inside:
        y = F.conv2d(tx, tw, tb, activation="relu", **case.opts)
    else:
        y = F.relu(F.conv2d(tx, tw, tb, **case.opts))
    out = F.max_pool2d(y, *pool)
    c = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    loss = (out * fastnn.tensor(c)).sum()
    if extra is not None:
        loss = loss + extra(y)
    loss.backward()
    return [t.grad.numpy() for t in (tx, tw, tb)]


def assert_close(got, want, what):
    for name, g, e in zip(("dx", "dw", "db"), got, want):
        assert np.abs(g - e).max() <= 1e-5 * max(np.abs(e).max(), 1e-30), f"{what}: {name}"


@pytest.mark.parametrize("case", [ConvCase(2, 12, 12, 3, 3, 3, 16),
                                  ConvCase(2, 11, 11, 8, 3, 3, 24, padding="same")], ids=str)
def test_f_conv_relu_max_pool_takes_the_fused_backward(case, fused_calls):
    fused = chain_gradients(case, (2,), relu_inside=True)
    assert fused_calls == [(2, 2)], "the pool's gradient did not reach the convolution unmade"
    assert_close(fused, chain_gradients(case, (2,), relu_inside=False), "fused against unfused")
    assert len(fused_calls) == 1, "a ReLU as its own op must not take the fused backward"


@pytest.mark.parametrize("pool", [(3, 2), (2, 2, "same"), (2, 1)], ids=str)
def test_f_pools_that_do_not_tile_the_map_are_not_fused(pool, fused_calls):
    case = ConvCase(1, 10, 10, 3, 3, 3, 8)
    got = chain_gradients(case, pool, relu_inside=True)
    assert not fused_calls
    assert_close(got, chain_gradients(case, pool, relu_inside=False), f"pool {pool}")


def test_f_conv_output_used_twice_adds_the_pools_gradient_made(fused_calls):
    """The convolution's output feeds the pool and a second op: the two
    gradients are added, so the pool's is computed first."""
    case = ConvCase(2, 10, 10, 3, 3, 3, 8)
    extra = lambda y: (y * y).sum()  # noqa: E731
    got = chain_gradients(case, (2,), relu_inside=True, extra=extra)
    assert not fused_calls
    assert_close(got, chain_gradients(case, (2,), relu_inside=False, extra=extra), "used twice")


def test_f_fused_backward_twice_with_retain_graph_gives_twice_the_gradient(fused_calls):
    case = ConvCase(1, 10, 10, 3, 3, 3, 8)
    x, w, b = case.inputs(12)
    tw = fastnn.tensor(w / 5, requires_grad=True)
    out = F.max_pool2d(F.conv2d(fastnn.tensor(x), tw, fastnn.tensor(b), activation="relu"), 2)
    loss = out.sum()
    loss.backward(retain_graph=True)
    once = tw.grad.numpy().copy()
    loss.backward()
    assert len(fused_calls) == 2
    assert np.allclose(tw.grad.numpy(), 2 * once, rtol=1e-6, atol=0)


def test_f_two_pools_of_one_convolution_add_their_gradients(fused_calls):
    case = ConvCase(1, 12, 12, 3, 3, 3, 8)
    x, w, b = case.inputs(13)

    def grads(relu_inside):
        tw = fastnn.tensor(w / 5, requires_grad=True)
        if relu_inside:
            y = F.conv2d(fastnn.tensor(x), tw, fastnn.tensor(b), activation="relu")
        else:
            y = F.relu(F.conv2d(fastnn.tensor(x), tw, fastnn.tensor(b)))
        (F.max_pool2d(y, 2).sum() + 2 * F.max_pool2d(y, 3).sum()).backward()
        return tw.grad.numpy()
    got = grads(True)
    assert not fused_calls  # two consumers: the pools' gradients are made and added
    want = grads(False)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_f_pool_of_a_leaf_or_a_plain_convolution_gives_its_gradient(fused_calls):
    x = fastnn.tensor(np.random.default_rng(2).standard_normal((1, 4, 4, 2)).astype(np.float32),
                      requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    want = _C.max_pool2d_backward(x.numpy(), np.ones((1, 2, 2, 2), np.float32), 2, 2, 2, 2,
                                  "valid")
    assert_same_bits(x.grad.numpy(), want, "pool of a leaf")
    assert not fused_calls


# ================================================================ the fused forward

def maxima_places(y, kh, kw):
    """The index (row-major in the window) of each kh x kw window's first
    maximum, as the forward must give it (the first NaN where there is one)."""
    n, h, w, f = y.shape
    win = y[:, :h // kh * kh, :w // kw * kw].reshape(n, h // kh, kh, w // kw, kw, f)
    win = win.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // kh, w // kw, kh * kw, f)
    nan = np.isnan(win)
    first_nan = np.argmax(nan, axis=3)
    return np.where(nan.any(axis=3), first_nan, np.argmax(np.where(nan, -np.inf, win), axis=3))


@pytest.mark.parametrize("case,k,algorithm", CASES, ids=str)
def test_conv2d_relu_max_pool_is_the_pool_of_the_relu_convolution(isa, threads, case, k,
                                                                   algorithm):
    kh, kw = pool_pair(k)
    x, w, y, p, dp, window = pooled_case(case, k, 13, algorithm)
    b = np.random.default_rng(14).standard_normal(case.f).astype(np.float32)
    y = _C.conv2d(x, w, b, *window, True, algorithm)
    want = _C.max_pool2d(y, kh, kw, kh, kw, "valid")
    got, arg = _C._conv2d_relu_max_pool(x, w, b, *window, kh, kw, algorithm)
    assert_same_bits(got, want, f"{isa} pooled output")
    assert arg.dtype == np.uint8 and np.array_equal(arg, maxima_places(y, kh, kw)), "arg"
    for need_dx in (True, False):  # arg stands for y in the backward, bit for bit
        by_y = _C._conv2d_pool_backward(x, w, y, got, dp, kh, kw, *window, need_dx, True, True,
                                        algorithm)
        by_arg = _C._conv2d_pool_backward(x, w, None, got, dp, kh, kw, *window, need_dx, True,
                                          True, algorithm, arg=arg)
        for name, a, g in zip(("dx", "dw", "db"), by_y, by_arg):
            if a is not None:
                assert_same_bits(g, a, f"{isa} {name} from arg")


def test_nan_maxima_pass_no_gradient_on_the_rows_path():
    case = ConvCase(2, 12, 12, 1, 1, 1, 3, bias=False)  # 1x1: y is x times w
    x, _, _ = case.inputs(5)
    w = np.ones((1, 1, 1, 3), np.float32)
    x[0, 2, 3, 0] = np.nan
    window = (1, 1, "valid", 0, 0, 1, 1)
    p, arg = _C._conv2d_relu_max_pool(x, w, None, *window, 2, 2, "direct")
    dp = np.ones_like(p)
    _, dw, db = _C._conv2d_pool_backward(x, w, None, p, dp, 2, 2, *window, False, True, True,
                                         arg=arg)
    _, dw2, db2 = _C._conv2d_pool_backward(x, w, _C.conv2d(x, w, None, *window, True), p, dp, 2,
                                           2, *window, False, True, True)
    finite = np.isfinite(p)
    assert not finite.all()
    want_db = np.where(finite & (p > 0), dp, 0).sum(axis=(0, 1, 2))
    assert np.allclose(db, want_db) and np.allclose(db2, want_db)
    # dw takes x's NaN times a zero gradient: NaN, as any backward gives it
    assert np.array_equal(dw, dw2, equal_nan=True) and np.isnan(dw).any()


def test_conv2d_relu_max_pool_gives_nan_maxima_and_the_first_nan():
    case = ConvCase(1, 6, 6, 1, 1, 1, 3, bias=False)  # 1x1: y is x times w
    x, _, _ = case.inputs(3)
    w = np.ones((1, 1, 1, 3), np.float32)
    x[0, 1, 1, 0] = np.nan  # the last cell of the first window
    x[0, 0, 2, 0] = x[0, 1, 2, 0] = np.nan  # two cells of the second
    window = (1, 1, "valid", 0, 0, 1, 1)
    p, arg = _C._conv2d_relu_max_pool(x, w, None, *window, 2, 2, "direct")
    assert np.isnan(p[0, 0, :2]).all() and not np.isnan(p[0, 0, 2]).any()
    assert (arg[0, 0, 0] == 3).all() and (arg[0, 0, 1] == 0).all()


@pytest.mark.parametrize("case", [ConvCase(8, 32, 32, 3, 3, 3, 32),
                                  ConvCase(8, 15, 15, 32, 3, 3, 64)], ids=str)
def test_conv2d_relu_max_pool_gives_the_same_bits_at_1_and_2_threads(case):
    x, w, _, _, _, window = pooled_case(case, 2, 15)
    runs = {}
    for n in (1, 2):
        with num_threads(n):
            runs[n] = _C._conv2d_relu_max_pool(x, w, None, *window, 2, 2)
    assert_same_bits(runs[2][0], runs[1][0], "p at 2 threads against 1")
    assert np.array_equal(runs[2][1], runs[1][1]), "arg at 2 threads against 1"


def test_conv2d_relu_max_pool_names_a_bad_argument():
    x, w, y, p, dp, window = pooled_case(ConvCase(1, 8, 8, 2, 3, 3, 4), 2, 9)
    with pytest.raises(ValueError, match="pool window 7x7 does not fit"):
        _C._conv2d_relu_max_pool(x, w, None, *window, 7, 7)
    _, arg = _C._conv2d_relu_max_pool(x, w, None, *window, 2, 2)
    call = _C._conv2d_pool_backward
    with pytest.raises(TypeError, match="argument 'arg' must be a uint8 array"):
        call(x, w, None, p, dp, 2, 2, *window, True, True, True, arg=arg.astype(np.int32))
    with pytest.raises(ValueError, match="argument 'arg' must be C-contiguous and of p's shape"):
        call(x, w, None, p, dp, 2, 2, *window, True, True, True, arg=arg[:, :2])
    with pytest.raises(TypeError, match="argument 'y' must be a float32 array when 'arg' is None"):
        call(x, w, None, p, dp, 2, 2, *window, True, True, True)


# ================================================================ Sequential

@pytest.fixture
def fused_forwards(monkeypatch):
    calls = []
    kernel = CPU.conv2d_relu_max_pool

    def counted(*args):
        calls.append(args[-2:])
        return kernel(*args)
    monkeypatch.setattr(CPU, "conv2d_relu_max_pool", staticmethod(counted))
    return calls


def sequential_gradients(layers, x, fused):
    """Output and parameter gradients of Sequential(layers) on x, with the
    layers run together where they can be (fused) or one by one."""
    model = fastnn.nn.Sequential(layers)
    if fused:
        out = model(fastnn.tensor(x))
    else:
        out = fastnn.tensor(x)
        for layer in layers:
            out = layer(out)
    c = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
    for p in model.parameters():
        p.grad = None
    (out * fastnn.tensor(c)).sum().backward()
    return out.numpy(), [p.grad.numpy() for p in model.parameters()]


@pytest.mark.parametrize("padding,pool,k", [("valid", 2, 3), ("same", 2, 3), ("valid", 3, 3),
                                            ("valid", 2, 1)])
def test_sequential_runs_conv_relu_and_max_pool_as_one_op(padding, pool, k, fused_forwards):
    from fastnn.nn import Conv2D, Dense, Flatten, MaxPooling2D
    layers = [Conv2D(8, k, activation="relu", padding=padding), MaxPooling2D(pool),
              Conv2D(16, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(5)]
    x = np.random.default_rng(6).standard_normal((3, 17, 16, 3)).astype(np.float32)
    sequential_gradients(layers, x, fused=False)  # builds the weights
    fused_forwards.clear()
    out, grads = sequential_gradients(layers, x, fused=True)
    assert fused_forwards == [(pool, pool), (2, 2)]
    want_out, want_grads = sequential_gradients(layers, x, fused=False)
    assert_same_bits(out, want_out, "output")
    for g, want in zip(grads, want_grads):
        assert np.abs(g - want).max() <= 1e-5 * np.abs(want).max()


def test_keras_layers_fuse_as_fastnns_do(fused_forwards):
    from fastnn.keras import layers as kl
    x = np.random.default_rng(8).standard_normal((2, 10, 10, 3)).astype(np.float32)
    model = fastnn.keras.models.Sequential([kl.Conv2D(4, (3, 3), activation="relu"),
                                            kl.MaxPooling2D((2, 2))])
    model.build(x.shape)
    out = model(fastnn.tensor(x)).numpy()
    assert fused_forwards == [(2, 2)]
    want = model.layers[1](model.layers[0](fastnn.tensor(x))).numpy()
    assert_same_bits(out, want, "output")


class _Doubled(fastnn.nn.Conv2D):
    def forward(self, x):
        return super().forward(x) * 2.0


@pytest.mark.parametrize("layers", [
    lambda nn: [_Doubled(4, 3, activation="relu"), nn.MaxPooling2D(2)],  # its own forward
    lambda nn: [nn.Conv2D(4, 3), nn.MaxPooling2D(2)],  # no ReLU
    lambda nn: [nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(3, strides=2)],
    lambda nn: [nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(2, padding="same")],
    lambda nn: [nn.Conv2D(4, 3, activation="relu"), nn.AveragePooling2D(2)],
    lambda nn: [nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(8)],  # larger than the map
    lambda nn: [nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(2, input_shape=(7, 7, 4))],
], ids=["subclass", "linear", "overlapping", "same", "average", "too large", "input_shape"])
def test_sequential_runs_other_pairs_one_by_one(layers, fused_forwards):
    layers = layers(fastnn.nn)
    x = np.random.default_rng(7).standard_normal((2, 9, 9, 2)).astype(np.float32)
    if isinstance(layers[1], fastnn.nn.MaxPooling2D) and layers[1].pool_size == (8, 8):
        with pytest.raises(ValueError, match="window spans 8 cells"):
            fastnn.nn.Sequential(layers)(fastnn.tensor(x))
    else:
        out = fastnn.nn.Sequential(layers)(fastnn.tensor(x)).numpy()
        want = layers[1](layers[0](fastnn.tensor(x))).numpy()
        assert_same_bits(out, want, "output")
    assert not fused_forwards
