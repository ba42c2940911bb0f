"""The array-level GPU kernels of fastnn._C_cuda (csrc/cuda/pointwise.cu)
against NumPy on the host, and against the CPU kernels of fastnn._C where
both have one (softmax family, cross-entropy, dropout).

Exactness: ops that are one correctly rounded float32 operation per element
(neg, abs, relu, sqrt, add, sub, mul, div, maximum, minimum, comparisons,
copies, max) must equal NumPy's float32 result bit for bit. Sums are checked
on small integers, whose float32 partial sums are all exact whatever the
order, so any element added twice or left out shows. Transcendental ops are
checked against float64 within a few units in the last place.

Every test needs a GPU and is skipped without one.
"""
import math

import numpy as np
import pytest

from fastnn import _C, cuda
from reference import ops as ref

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU available")

if cuda.is_built():
    from fastnn import _C_cuda as G
else:
    G = None


# ---------------------------------------------------------------- helpers

def dev(x):
    """A float32 copy of x on the GPU."""
    return G.DeviceArray.from_numpy(np.asarray(x, dtype=np.float32))


def host(d):
    """The float32 contents of a DeviceArray, checked to be a new C-order array."""
    assert isinstance(d, G.DeviceArray)
    out = d.numpy()
    assert out.dtype == np.float32 and out.flags.c_contiguous
    return out


def normal(rng, shape, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


def small_ints(rng, shape, lo=-4, hi=4):
    """Integers as float32: every partial sum of up to 2^22 of them is exact."""
    return np.asarray(rng.integers(lo, hi + 1, size=shape), dtype=np.float32)


def assert_same(got, expected):
    """Bit for bit, apart from the sign of zero; NaN where NaN is expected."""
    expected = np.asarray(expected, dtype=np.float32)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)


def assert_close(got, expected, rtol, atol=0.0):
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol)


def assert_close_in_rows(got, expected, terms, rtol):
    """Each element within rtol of the largest of `terms` in its row (the last
    axis), terms being the magnitudes the float32 computation adds up (the
    result may cancel down to much less): the error that a float32 sum over
    the row passes to every element."""
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if expected.size == 0:
        return
    tol = rtol * np.max(terms, axis=-1, keepdims=True) + 1e-12
    err = np.abs(got.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(err - tol), err.shape)
    assert np.all(err <= tol), (
        f"error {err[worst]} at {worst}: got {got[worst]}, expected {expected[worst]}")


# odd sizes: scalars, empty, one element, primes, more than a million
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 0, 3), (1, 1, 1), (13, 1, 17), (1000003,)]


# ---------------------------------------------------------------- unary

EXACT_UNARY = {
    "neg": np.negative,
    "abs": np.abs,
    "relu": lambda x: np.where(x > 0, x, np.float32(0)),
    "sqrt": np.sqrt,
}
# float64 references; CUDA's expf, logf, tanhf are within 2 ulp
APPROX_UNARY = {
    "exp": lambda x: np.exp(x.astype(np.float64)),
    "log": lambda x: np.log(x.astype(np.float64)),
    "tanh": ref.tanh_forward,
    "sigmoid": ref.sigmoid_forward,
}


def unary_input(rng, op, shape):
    x = normal(rng, shape, 3.0)
    return np.abs(x) + np.float32(0.01) if op in ("log", "sqrt") else x


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", list(EXACT_UNARY) + list(APPROX_UNARY))
def test_unary_matches_numpy(op, shape):
    rng = np.random.default_rng(len(shape) * 100 + sum(shape))
    x = unary_input(rng, op, shape)
    got = host(G.unary(op, dev(x)))
    if op in EXACT_UNARY:
        assert_same(got, EXACT_UNARY[op](x))
    else:
        assert_close(got, APPROX_UNARY[op](x), rtol=2e-6, atol=1e-37)


def test_unary_at_extreme_inputs():
    x = np.array([-1e30, -100, -20, -1e-30, 0, 1e-30, 20, 100, 1e30], np.float32)
    assert_close(host(G.unary("sigmoid", dev(x))), ref.sigmoid_forward(x), rtol=2e-6, atol=1e-37)
    assert_close(host(G.unary("tanh", dev(x))), ref.tanh_forward(x), rtol=2e-6, atol=1e-37)
    assert_same(host(G.unary("relu", dev(x))), np.maximum(x, 0))
    special = np.array([np.inf, -np.inf, np.nan, 0.0], np.float32)  # exact results
    assert_same(host(G.unary("exp", dev(special))), [np.inf, 0.0, np.nan, 1.0])
    special = np.append(special, np.float32(-1.0))
    assert_same(host(G.unary("log", dev(special))), [np.inf, np.nan, np.nan, -np.inf, np.nan])
    assert_same(host(G.unary("sqrt", dev(special))), [np.inf, np.nan, np.nan, 0.0, np.nan])


def test_unary_returns_a_new_array_and_leaves_the_input():
    x = np.arange(-3, 4, dtype=np.float32)
    dx = dev(x)
    y = G.unary("neg", dx)
    assert y is not dx and y.shape == dx.shape
    assert_same(host(dx), x)


# ---------------------------------------------------------------- unary backward

def backward_reference(op, y, dy):
    """dx from the forward output y, in float64."""
    y, dy = y.astype(np.float64), dy.astype(np.float64)
    return {
        "relu": lambda: np.where(y > 0, dy, 0.0),
        "sigmoid": lambda: dy * y * (1 - y),
        "tanh": lambda: dy * (1 - y * y),
        "exp": lambda: dy * y,
        "sqrt": lambda: dy * 0.5 / y,
    }[op]()


@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (33, 65), (1000003,)], ids=str)
@pytest.mark.parametrize("op", ["relu", "sigmoid", "tanh", "exp", "sqrt"])
def test_unary_backward_through_the_output(op, shape):
    rng = np.random.default_rng(17)
    x = unary_input(rng, op, shape)
    y = host(G.unary(op, dev(x)))
    dy = normal(rng, shape)
    got = host(G.unary_backward(op, dev(y), dev(dy)))
    if op == "relu":
        assert_same(got, np.where(y > 0, dy, np.float32(0)))
    else:  # a few roundings; 1 - y^2 may be fused
        assert_close(got, backward_reference(op, y, dy), rtol=1e-6, atol=1e-6)


def test_unary_backward_checks_its_arguments():
    a, b = dev(np.ones((2, 3))), dev(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"'y' and 'dy' must have the same shape, got "
                                         r"\(2, 3\) and \(3, 2\)"):
        G.unary_backward("relu", a, b)
    with pytest.raises(ValueError, match="'op' must be one of relu, sigmoid, tanh, exp, sqrt, "
                                         "got 'neg'"):
        G.unary_backward("neg", a, a)


# ---------------------------------------------------------------- binary

ARITHMETIC = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "maximum": np.maximum, "minimum": np.minimum}
COMPARISONS = {"eq": np.equal, "gt": np.greater, "ge": np.greater_equal, "lt": np.less,
               "le": np.less_equal}

BROADCAST_SHAPES = [
    ((), ()), ((), (3,)), ((4,), ()), ((1,), (7,)), ((7,), (7,)), ((2, 3), (3,)),
    ((2, 1), (1, 3)), ((5, 1, 4), (3, 1)), ((3, 4), (2, 3, 4)), ((0,), (1,)), ((0, 3), (1, 3)),
    ((2, 0, 3), (3,)), ((1, 1, 1), (1,)), ((33, 65), (33, 65)), ((1000003,), (1,)),
    ((1000003,), (1000003,)), ((3, 1, 5, 1, 7), (1, 4, 1, 6, 1)), ((64, 1, 1000), (1, 30, 1)),
    # eight dimensions that cannot merge: the most a view supports
    ((2, 1, 2, 1, 2, 1, 2, 1), (1, 2, 1, 2, 1, 2, 1, 2)),
    # more than eight given, fewer once unit and contiguous dims merge
    ((1, 2, 3, 1, 1, 2, 2, 1, 1, 3, 1), (2, 1, 1, 1, 2, 2, 1, 1, 3, 1)),
]


@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("op", list(ARITHMETIC))
def test_binary_arithmetic_broadcasts_like_numpy(op, sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a, b = normal(rng, sa), normal(rng, sb)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ARITHMETIC[op](a, b)
    assert_same(host(G.binary(op, dev(a), dev(b))), expected)


@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("op", list(COMPARISONS))
def test_binary_comparisons_give_one_or_zero(op, sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a, b = small_ints(rng, sa, -2, 2), small_ints(rng, sb, -2, 2)  # many ties
    assert_same(host(G.binary(op, dev(a), dev(b))), COMPARISONS[op](a, b).astype(np.float32))


@pytest.mark.parametrize("sa,sb", [((), ()), ((7,), ()), ((3, 1), (1, 4)), ((1000003,), (1,))],
                         ids=str)
def test_binary_pow(sa, sb):
    rng = np.random.default_rng(5)
    a = np.abs(normal(rng, sa)) + np.float32(0.5)
    b = normal(rng, sb, 2.0)
    expected = np.power(a.astype(np.float64), b.astype(np.float64))
    assert_close(host(G.binary("pow", dev(a), dev(b))), expected, rtol=4e-6)


def test_binary_maximum_and_minimum_propagate_nan_and_ignore_argument_order():
    a = np.array([np.nan, 1.0, np.nan, -np.inf, 2.0], np.float32)
    b = np.array([1.0, np.nan, np.nan, 3.0, np.inf], np.float32)
    for op, f in (("maximum", np.maximum), ("minimum", np.minimum)):
        assert_same(host(G.binary(op, dev(a), dev(b))), f(a, b))
        assert_same(host(G.binary(op, dev(b), dev(a))), f(b, a))


def test_binary_rejects_shapes_that_do_not_broadcast():
    for sa, sb in [((2, 3), (4,)), ((2,), (3,)), ((0,), (2,)), ((3, 1, 2), (4, 3))]:
        pattern = (r"binary 'add': arguments 'a' and 'b' have shapes " + re_shape(sa) + " and "
                   + re_shape(sb) + ", which do not broadcast together")
        with pytest.raises(ValueError, match=pattern):
            G.binary("add", dev(np.zeros(sa)), dev(np.zeros(sb)))


def test_binary_refuses_more_than_eight_unmergeable_dimensions():
    sa = (2, 1) * 4 + (2,)
    sb = (1, 2) * 4 + (1,)
    with pytest.raises(ValueError, match="at most 8"):
        G.binary("add", dev(np.zeros(sa)), dev(np.zeros(sb)))


def test_ops_reject_unknown_names_and_host_arrays():
    d = dev(np.ones(3))
    with pytest.raises(ValueError, match="'op' must be one of neg, exp, log, sqrt, relu, "
                                         "sigmoid, tanh, abs, got 'cube'"):
        G.unary("cube", d)
    with pytest.raises(ValueError, match="'op' must be one of add, .*, got 'mod'"):
        G.binary("mod", d, d)
    with pytest.raises(ValueError, match="'op' must be one of add, .*, got 'eq'"):
        G.scalar("eq", d, 1.0)
    with pytest.raises(TypeError, match="binary: argument 'b' must be a DeviceArray, got ndarray"):
        G.binary("add", d, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="sum: argument 'x' must be a DeviceArray, got list"):
        G.sum([1.0], [0], False)


def re_shape(shape):
    """A shape as the messages write it, escaped for a regular expression."""
    text = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    return text.replace("(", r"\(").replace(")", r"\)")


# ---------------------------------------------------------------- scalar

SCALAR_OPS = {
    "add": lambda x, s: x + s, "sub": lambda x, s: x - s, "mul": lambda x, s: x * s,
    "div": lambda x, s: x / s, "rsub": lambda x, s: s - x, "rdiv": lambda x, s: s / x,
    "maximum": np.maximum, "minimum": np.minimum,
}


@pytest.mark.parametrize("s", [2.5, -1.0, 0.0, 1e-3])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (3, 5), (1000003,)], ids=str)
@pytest.mark.parametrize("op", list(SCALAR_OPS))
def test_scalar_ops_match_numpy(op, shape, s):
    rng = np.random.default_rng(3)
    x = normal(rng, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = SCALAR_OPS[op](x, np.float32(s))
    assert_same(host(G.scalar(op, dev(x), s)), expected)


@pytest.mark.parametrize("s", [2.5, 0.5, -1.5])
@pytest.mark.parametrize("shape", [(), (7,), (1000003,)], ids=str)
def test_scalar_pow_and_rpow(shape, s):
    rng = np.random.default_rng(4)
    x = np.abs(normal(rng, shape)) + np.float32(0.25)
    x64, s64 = x.astype(np.float64), np.float64(np.float32(s))
    assert_close(host(G.scalar("pow", dev(x), s)), x64 ** s64, rtol=4e-6)
    base = abs(s)  # a positive base for s ** x
    assert_close(host(G.scalar("rpow", dev(x), base)), np.float64(np.float32(base)) ** x64,
                 rtol=4e-6)


# ---------------------------------------------------------------- reductions

REDUCTIONS = [  # (shape, axes); axes as the autograd layer passes them
    ((), ()), ((7,), ()), ((7,), (0,)), ((1,), (0,)), ((3, 4), (0,)), ((3, 4), (1,)),
    ((3, 4), (0, 1)), ((2, 3, 4), (1,)), ((2, 3, 4), (0, 2)), ((2, 3, 4), (0, 1, 2)),
    ((5, 6, 7, 8), (1, 3)), ((5, 6, 7, 8), (0, 2, 3)), ((4, 1, 5), (1,)), ((1, 1), (0, 1)),
    ((0, 3), (1,)), ((2, 0, 3), (0, 2)),
    # long rows, long columns, both split into chunks and combined in a second pass
    ((1000003,), (0,)), ((1000, 1003), (0,)), ((1000, 1003), (1,)), ((3, 100003), (1,)),
    ((100003, 3), (0,)), ((8193, 5), (0,)), ((5, 8193), (1,)), ((64, 1, 30000), (0, 2)),
    ((30000, 7, 3), (0, 2)), ((2, 2, 2, 2, 2, 2, 2, 2, 2), (0, 2, 4, 6, 8)),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axes", REDUCTIONS, ids=str)
def test_sum_is_exact_on_small_integers(shape, axes, keepdims):
    rng = np.random.default_rng(11)
    x = small_ints(rng, shape)
    got = host(G.sum(dev(x), list(axes), keepdims))
    expected = np.sum(x.astype(np.float64), axis=axes, keepdims=keepdims)
    assert_same(got, expected)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axes", REDUCTIONS, ids=str)
def test_max_matches_numpy(shape, axes, keepdims):
    rng = np.random.default_rng(12)
    x = normal(rng, shape)
    got = host(G.max(dev(x), list(axes), keepdims))
    assert_same(got, np.max(x, axis=axes, keepdims=keepdims))


@pytest.mark.parametrize("shape,axes", [((1000003,), (0,)), ((1000, 1003), (0,)),
                                        ((1000, 1003), (1,)), ((64, 1, 30000), (0, 2))], ids=str)
def test_sum_of_floats_is_accurate_and_repeats_bit_for_bit(shape, axes):
    rng = np.random.default_rng(13)
    x = normal(rng, shape)
    d = dev(x)
    first = host(G.sum(d, list(axes), False))
    expected = np.sum(x.astype(np.float64), axis=axes)
    # about 2^-24 per addition on the longest chain (a thread's run plus the trees)
    bound = 256 * 2.0 ** -24 * np.sum(np.abs(x.astype(np.float64)), axis=axes)
    assert np.all(np.abs(first - expected) <= bound)
    for _ in range(3):
        np.testing.assert_array_equal(host(G.sum(d, list(axes), False)), first)


def test_reductions_over_nothing():
    x = dev(np.zeros((4, 0, 3)))
    assert_same(host(G.sum(x, [1], False)), np.zeros((4, 3)))
    assert_same(host(G.sum(x, [1], True)), np.zeros((4, 1, 3)))
    assert host(G.sum(x, [0, 2], False)).shape == (0,)
    assert host(G.max(x, [0, 2], True)).shape == (1, 0, 1)
    with pytest.raises(ValueError, match=r"max: axes \[1\] of 'x' of shape \(4, 0, 3\) hold no "
                                         "elements"):
        G.max(x, [1], False)


def test_reduction_of_everything_is_zero_dimensional():
    x = np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4)
    s = G.sum(dev(x), [0, 1, 2], False)
    assert s.shape == () and s.ndim == 0 and s.size == 1
    assert host(s) == np.float32(300)
    assert G.max(dev(x), [0, 1, 2], True).shape == (1, 1, 1)
    assert host(G.max(dev(x), [0, 1, 2], False)) == np.float32(24)


def test_max_propagates_nan():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0], [np.nan, -np.inf, 0.0]], np.float32)
    assert_same(host(G.max(dev(x), [1], False)), [np.nan, 6.0, np.nan])
    assert_same(host(G.max(dev(x), [0], False)), [np.nan, np.nan, 6.0])


@pytest.mark.parametrize("axes", [[1, 0], [0, 0], [2], [-1]])
def test_reductions_reject_axes_not_normalised(axes):
    x = dev(np.ones((2, 3)))
    for fn in (G.sum, G.max):
        with pytest.raises(ValueError, match=r"'axes' must hold sorted, distinct axes in \[0, 2\)"
                                             r" for 'x' of shape \(2, 3\)"):
            fn(x, axes, False)
    with pytest.raises(TypeError, match="'axes' must hold ints, got float"):
        G.sum(x, [0.0], False)


# ---------------------------------------------------------------- layout

@pytest.mark.parametrize("src,shape", [
    ((), ()), ((), (3, 2)), ((1,), (4,)), ((3,), (2, 3)), ((3,), (3,)), ((2, 1, 3), (4, 2, 5, 3)),
    ((1, 3), (0, 3)), ((5, 1), (5, 1000)), ((1, 1000003), (2, 1000003)), ((7, 1, 1), (7, 3, 11)),
], ids=str)
def test_broadcast_to_matches_numpy(src, shape):
    x = normal(np.random.default_rng(1), src)
    assert_same(host(G.broadcast_to(dev(x), shape)), np.broadcast_to(x, shape))


def test_broadcast_to_rejects_shapes_numpy_rejects():
    for src, shape in [((3,), (4,)), ((2, 3), (3,)), ((2, 1), (2, 0, 3)), ((0,), (2,))]:
        with pytest.raises(ValueError, match=r"broadcast_to: argument 'x' of shape "
                                             + re_shape(src) + " cannot be broadcast to shape "
                                             + re_shape(shape)):
            G.broadcast_to(dev(np.zeros(src)), shape)
    with pytest.raises(ValueError, match="'shape' must not be negative"):
        G.broadcast_to(dev(np.zeros(3)), (-1, 3))


@pytest.mark.parametrize("shape,axes", [
    ((), ()), ((7,), (0,)), ((3, 5), (1, 0)), ((3, 5), (0, 1)), ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (1, 2, 0)), ((2, 3, 4, 5), (3, 1, 0, 2)), ((1, 3, 1, 4), (3, 2, 1, 0)),
    ((0, 3), (1, 0)), ((1000, 1003), (1, 0)), ((8, 16, 32, 3), (0, 3, 1, 2)),
    ((2, 3, 2, 3, 2, 3, 2, 3), (7, 6, 5, 4, 3, 2, 1, 0)),
], ids=str)
def test_permute_matches_numpy_transpose(shape, axes):
    x = normal(np.random.default_rng(2), shape)
    got = host(G.permute(dev(x), list(axes)))
    assert_same(got, np.transpose(x, axes))


@pytest.mark.parametrize("axes", [[0], [0, 0], [0, 2], [1, -1], [0, 1, 2]])
def test_permute_rejects_what_is_not_a_permutation(axes):
    with pytest.raises(ValueError, match=r"permute: argument 'axes' must be a permutation of "
                                         r"0 \.\. 1 for 'x' of shape \(2, 3\)"):
        G.permute(dev(np.ones((2, 3))), axes)


@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 1000003)], ids=str)
def test_copy_fill_and_axpy(shape):
    rng = np.random.default_rng(6)
    x, y = normal(rng, shape), normal(rng, shape)
    dx = dev(x)
    c = G.copy(dx)
    assert c is not dx and c.shape == x.shape
    assert_same(host(c), x)
    assert G.fill(c, 2.5) is None
    assert_same(host(c), np.full(shape, 2.5, np.float32))
    assert_same(host(dx), x)  # the copy did not share memory
    dy = dev(y)
    assert G.axpy(-0.75, dx, dy) is None
    assert_close(host(dy), y.astype(np.float64) - 0.75 * x.astype(np.float64),
                 rtol=1e-6, atol=1e-6)
    G.axpy(1.0, dy, dy)  # x and y may be one array
    assert_close(host(dy), 2.0 * (y.astype(np.float64) - 0.75 * x.astype(np.float64)),
                 rtol=1e-6, atol=2e-6)


def test_axpy_checks_shapes():
    with pytest.raises(ValueError, match=r"axpy: arguments 'x' and 'y' must have the same shape, "
                                         r"got \(3,\) and \(1, 3\)"):
        G.axpy(1.0, dev(np.ones(3)), dev(np.ones((1, 3))))
    with pytest.raises(TypeError, match="fill: argument 'x' must be a DeviceArray"):
        G.fill(np.ones(3, np.float32), 0.0)


# ---------------------------------------------------------------- softmax family

ROW_SHAPES = [(1,), (7,), (1, 1), (3, 5), (2, 3, 1000), (64, 10), (5, 1000003), (0, 5), (5, 0),
              (1000, 3)]


def cpu_rtol(cols):
    """How close the CPU kernels come to float64 on rows of `cols` values: they
    sum a row in 16 lanes one after another (about 2e-4 off at a million);
    the GPU's tree keeps within 2e-5."""
    return 2e-5 if cols <= 10_000 else 1e-3


def extreme_logits():
    return np.array([
        [1e4, -1e4, 0.0, 3.0],
        [-1e4, -1e4, -1e4, -1e4],        # all equal and far below 0
        [88.0, 89.0, 90.0, 91.0],        # e^x alone would overflow float32
        [-1e30, 1e30, 0.0, 1e30],        # a tie at the top
        [1.5e38, -1.5e38, 1.0, 1.5e38],  # near the float32 limit (x - max stays finite)
    ], np.float32)


@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
def test_softmax_and_log_softmax_match_the_reference_and_the_cpu(shape):
    rng = np.random.default_rng(8)
    x = normal(rng, shape, 4.0)
    cols = shape[-1]
    y = host(G.softmax(dev(x)))
    assert_close(y, ref.softmax_forward(x), rtol=2e-5, atol=1e-30)
    assert_close(y, _C.softmax(x), rtol=cpu_rtol(cols), atol=1e-30)
    ly = host(G.log_softmax(dev(x)))
    assert_close(ly, ref.log_softmax_forward(x), rtol=1e-5, atol=2e-5)
    assert_close(ly, _C.log_softmax(x), rtol=1e-5, atol=cpu_rtol(cols))


def test_softmax_is_stable_for_extreme_logits():
    x = extreme_logits()
    y = host(G.softmax(dev(x)))
    ly = host(G.log_softmax(dev(x)))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ly))
    assert_close(y, ref.softmax_forward(x), rtol=1e-6, atol=1e-30)
    assert_close(ly, ref.log_softmax_forward(x), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
def test_softmax_backward_and_log_softmax_backward(shape):
    rng = np.random.default_rng(9)
    x, dout = normal(rng, shape, 2.0), normal(rng, shape)
    cols = shape[-1]
    d64 = dout.astype(np.float64)
    y = host(G.softmax(dev(x)))
    got = host(G.softmax_backward(dev(y), dev(dout)))
    y64 = y.astype(np.float64)  # the formula on the float32 forward output, in float64
    terms = y64 * (np.abs(d64) + np.sum(np.abs(d64 * y64), axis=-1, keepdims=True))
    expected = y64 * (d64 - np.sum(d64 * y64, axis=-1, keepdims=True))
    assert_close_in_rows(got, expected, terms, 1e-5)
    assert_close_in_rows(got, ref.softmax_backward(dout, x)[0], terms, 1e-4)
    assert_close_in_rows(got, _C.softmax_backward(y, dout), terms, cpu_rtol(cols))

    ly = host(G.log_softmax(dev(x)))
    got = host(G.log_softmax_backward(dev(ly), dev(dout)))
    p64 = np.exp(ly.astype(np.float64))
    terms = np.abs(d64) + p64 * np.sum(np.abs(d64), axis=-1, keepdims=True)
    expected = d64 - p64 * np.sum(d64, axis=-1, keepdims=True)
    assert_close_in_rows(got, expected, terms, 1e-5)
    assert_close_in_rows(got, ref.log_softmax_backward(dout, x)[0], terms, 1e-4)
    assert_close_in_rows(got, _C.log_softmax_backward(ly, dout), terms, cpu_rtol(cols))


def test_softmax_family_checks_arguments():
    with pytest.raises(ValueError, match="softmax: argument 'x' must have at least 1 dimension"):
        G.softmax(dev(np.float32(1)))
    with pytest.raises(ValueError, match="log_softmax: argument 'x' must have at least 1"):
        G.log_softmax(dev(np.float32(1)))
    with pytest.raises(ValueError, match=r"softmax_backward: arguments 'y' and 'dy' must have the "
                                         r"same shape, got \(2, 3\) and \(3, 2\)"):
        G.softmax_backward(dev(np.ones((2, 3))), dev(np.ones((3, 2))))
    with pytest.raises(ValueError, match="log_softmax_backward: arguments 'y' and 'dy'"):
        G.log_softmax_backward(dev(np.ones(3)), dev(np.ones(4)))


# ---------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("n,c", [(1, 1), (4, 10), (37, 1000), (1000, 7), (3, 100003), (2048, 2)])
def test_cross_entropy_matches_the_reference_and_the_cpu(n, c):
    rng = np.random.default_rng(n * 7 + c)
    logits = normal(rng, (n, c), 3.0)
    labels = rng.integers(0, c, size=n).astype(np.int64)
    loss, prob = G.cross_entropy(dev(logits), labels)
    assert isinstance(loss, float)
    assert math.isclose(loss, ref.cross_entropy_forward(logits, labels), rel_tol=1e-5,
                        abs_tol=1e-6)
    cpu_loss, cpu_prob = _C.cross_entropy(logits, labels)
    assert math.isclose(loss, cpu_loss, rel_tol=1e-5, abs_tol=cpu_rtol(c))
    p = host(prob)
    assert_close(p, ref.softmax_forward(logits), rtol=2e-5, atol=1e-30)
    assert_close(p, cpu_prob, rtol=cpu_rtol(c), atol=1e-30)

    scale = 1.0 / n
    dx = host(G.cross_entropy_backward(prob, labels, scale))
    expected = p.astype(np.float64) * scale
    expected[np.arange(n), labels] -= scale
    assert_close(dx, expected, rtol=1e-6, atol=1e-7 * scale)
    assert_close(dx, _C.cross_entropy_backward(p, labels, scale), rtol=1e-6, atol=1e-7 * scale)
    assert_close(dx, ref.cross_entropy_backward(1.0, logits, labels)[0], rtol=1e-4,
                 atol=1e-6 * scale)


def test_cross_entropy_is_exact_for_extreme_logits():
    logits = extreme_logits()
    labels = np.array([1, 2, 0, 2, 1], np.int64)
    loss, prob = G.cross_entropy(dev(logits), labels)
    assert math.isfinite(loss)
    # log-sum-exp minus the label's logit, per row
    assert math.isclose(loss, ref.cross_entropy_forward(logits, labels), rel_tol=1e-6)
    assert np.all(np.isfinite(host(prob)))


def test_cross_entropy_of_no_rows_is_nan():
    loss, prob = G.cross_entropy(dev(np.zeros((0, 5))), np.zeros(0, np.int64))
    assert math.isnan(loss) and prob.shape == (0, 5)
    dx = G.cross_entropy_backward(prob, np.zeros(0, np.int64), 1.0)
    assert dx.shape == (0, 5)


def test_cross_entropy_rejects_bad_labels_like_the_cpu():
    logits = dev(np.zeros((3, 5)))
    for fn, args in (("cross_entropy", ()), ("cross_entropy_backward", (1.0,))):
        f = getattr(G, fn)
        for bad, pos in (([0, 5, 1], 1), ([0, 1, -1], 2), ([7, 9, 9], 0)):
            with pytest.raises(ValueError, match=re_escape(
                    f"{fn}: argument 'labels' must hold class indices in [0, 5), got "
                    f"{bad[pos]} at position {pos}")):
                f(logits, np.array(bad, np.int64), *args)
        with pytest.raises(TypeError, match="'labels' must be int64, got int32"):
            f(logits, np.array([0, 1, 2], np.int32), *args)
        with pytest.raises(ValueError, match=r"'labels' must have shape \(3,\), got \(4,\)"):
            f(logits, np.zeros(4, np.int64), *args)
        with pytest.raises(ValueError, match="'labels' must be 1-D"):
            f(logits, np.zeros((3, 1), np.int64), *args)
        with pytest.raises(TypeError, match="'labels' must be a NumPy int64 array on the host"):
            f(logits, dev(np.zeros(3)), *args)
        with pytest.raises(ValueError, match=r"must be 2-D \(batch, classes\), got shape \(5,\)"):
            f(dev(np.zeros(5)), np.zeros(5, np.int64), *args)
    # the CPU words it the same way
    with pytest.raises(ValueError, match=re_escape("class indices in [0, 5), got 5 at position 1")):
        _C.cross_entropy(np.zeros((3, 5), np.float32), np.array([0, 5, 1], np.int64))


def re_escape(text):
    import re
    return re.escape(text)


# ---------------------------------------------------------------- dropout

@pytest.mark.parametrize("key", [0, 1, 12345, 2 ** 32, 2 ** 63 + 5, 2 ** 64 - 1])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (33, 65), (1000003,)], ids=str)
def test_dropout_mask_is_the_cpu_mask(shape, rate, key):
    rng = np.random.default_rng(10)
    x = normal(rng, shape)
    got = host(G.dropout(dev(x), rate, key))
    assert_same(got, _C.dropout(x, rate, key))


def test_dropout_keeps_about_one_minus_rate_and_scales():
    x = np.ones(1000003, np.float32)
    for rate in (0.1, 0.5, 0.9):
        y = host(G.dropout(dev(x), rate, 7))
        kept = y != 0
        assert abs(kept.mean() - (1 - rate)) < 0.005
        assert_same(y[kept], np.full(kept.sum(), np.float32(1) / np.float32(1 - np.float32(rate))))
    # a different key, a different mask
    a = host(G.dropout(dev(x), 0.5, 1)) != 0
    b = host(G.dropout(dev(x), 0.5, 2)) != 0
    assert 0.4 < np.mean(a != b) < 0.6


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_rejects_rates_outside_zero_one(rate):
    with pytest.raises(ValueError, match=r"dropout: argument 'rate' must be in \[0, 1\)"):
        G.dropout(dev(np.ones(3)), rate, 0)


# ---------------------------------------------------------------- devices

def test_ops_leave_the_current_device_as_it_was():
    before = G.current_device()
    x = dev(np.ones((4, 5)))
    G.sum(G.binary("add", x, x), [1], False)
    G.cross_entropy(x, np.zeros(4, np.int64))
    assert G.current_device() == before


@pytest.mark.skipif(cuda.device_count() < 2, reason="needs two GPUs")
def test_ops_run_on_their_operands_device_and_reject_mixed_devices():
    x0 = dev(np.ones((3, 3)))
    G.set_device(1)
    try:
        x1 = dev(np.ones((3, 3)))
        y = G.unary("neg", x0)  # runs and allocates on cuda:0
        assert G.current_device() == 1
    finally:
        G.set_device(0)
    assert y.device == "cuda:0"
    assert_same(host(y), -np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"binary: arguments 'a' and 'b' are on different devices"
                                         r" \(cuda:0 and cuda:1\)"):
        G.binary("add", x0, x1)
    with pytest.raises(ValueError, match="different devices"):
        G.axpy(1.0, x0, x1)
