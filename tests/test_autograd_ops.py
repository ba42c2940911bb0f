"""The differentiable ops of fastnn.functional and the Tensor operators.

Every op is checked three ways:
- float32 forward and gradients against the float64 references of
  reference/ops.py (or NumPy), within a float32 error model of the op;
- float64 gradients against central differences (check_grad), tightly;
- the ops with C++ kernels (relu, sigmoid, tanh, softmax, log_softmax,
  cross_entropy, dropout, and matmul / linear on the GEMM) on every SIMD
  path, and on sizes the kernels split over threads, where 1 and 2 threads
  must give the same bits.
Then the semantics that users rely on: broadcasting and the reduction of
gradients to each input's shape, axes and keepdims, 0- and 1-size
dimensions, matmul's shape rules, indexing with repeated indices, extreme
inputs, and dropout's masks.
"""
import math
import operator
from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import forced_isa, num_threads
from fastnn import Tensor
from reference import ops as ref
from reference.checks import assert_within
from reference.gemm import gemm_tolerance

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
TINY32 = float(np.finfo(np.float32).tiny)  # denormal results may be flushed to zero
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


# ================================================================ helpers

def t64(a, requires_grad=True):
    """A float64 tensor over a private copy of a."""
    return fastnn.tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad,
                         dtype="float64")


def t32(a, requires_grad=True):
    """A float32 tensor over a private copy of a."""
    return fastnn.tensor(np.array(a, dtype=np.float32), requires_grad=requires_grad)


def ulps(eps, *terms, k=8):
    """k units of eps times the sum of |terms| (the sizes of the numbers that
    were rounded on the way to a result), plus the smallest normal float32."""
    total = 0.0
    for t in terms:
        total = total + np.abs(t)
    return k * eps * total + TINY32


def forward_backward(fn, arrays, consts=(), dtype=np.float32, dout=None, seed=1):
    """fn(*tensors, *consts) on tensors of ``arrays`` in dtype, all requiring
    grad, then backward with ``dout`` (random when None): returns (out,
    dout, grads) as arrays, one gradient per array."""
    tensors = [fastnn.tensor(np.array(a, dtype=dtype), requires_grad=True, dtype=dtype)
               for a in arrays]
    out = fn(*tensors, *consts)
    assert isinstance(out, Tensor), f"result is {type(out).__name__}, want Tensor"
    assert out.dtype == dtype, f"result dtype {out.dtype}, want {np.dtype(dtype)}"
    assert out.device == "cpu", f"result of CPU tensors is on {out.device}"
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(out.shape)
    dout = np.asarray(dout, dtype=dtype)
    out.backward(dout)
    grads = []
    for i, t in enumerate(tensors):
        assert t.grad is not None, f"input {i} got no gradient"
        g = t.grad.numpy()
        assert g.shape == t.shape, f"gradient of input {i}: shape {g.shape}, want {t.shape}"
        assert g.dtype == dtype, f"gradient of input {i}: dtype {g.dtype}, want {np.dtype(dtype)}"
        grads.append(g)
    return out.numpy(), dout, grads


def check_grad(fn, *inputs, h=1e-6, rtol=1e-6, seed=2):
    """The gradients of sum(fn(*inputs) * dout), dout random, against central
    differences (f(x + h) - f(x - h)) / 2h, for every float64 Tensor input
    that requires grad; the other Tensor inputs must get no gradient.

    An element may be off by rtol times the largest gradient entry, plus the
    rounding noise of the differences (10 eps64 times the size of the
    objective's terms, over h)."""
    wrt = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    assert wrt, "check_grad: no input requires grad"
    for t in inputs:
        if isinstance(t, Tensor):
            assert t.dtype == np.float64, "check_grad needs float64 inputs"
            t.grad = None
    out = fn(*inputs)
    assert out.dtype == np.float64, f"result dtype {out.dtype}, want float64"
    dout = np.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    out.backward(dout)
    noise = 10 * EPS64 * float(np.sum(np.abs(out.numpy() * dout))) / h

    def objective():
        with fastnn.no_grad():
            return float(np.sum(fn(*inputs).numpy() * dout))

    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and not t.requires_grad:
            assert t.grad is None, f"input {i} does not require grad but got a gradient"
    for i, t in enumerate(wrt):
        assert t.grad is not None, f"input {i} requires grad but got no gradient"
        analytic = t.grad.numpy()
        assert analytic.shape == t.shape and analytic.dtype == np.float64
        x = t.numpy()  # the tensor's own memory: perturbed in place
        numeric = np.empty(x.shape)
        for idx in np.ndindex(x.shape):
            orig = x[idx]
            x[idx] = orig + h
            up = objective()
            x[idx] = orig - h
            down = objective()
            x[idx] = orig
            numeric[idx] = (up - down) / (2 * h)
        tol = rtol * np.abs(numeric).max(initial=0.0) + noise
        assert_within(analytic, numeric, tol, f"gradient of input {i} vs central differences")


def check_float32_against_float64(fn, *arrays, rtol=1e-5, exact=None):
    """fn on float32 tensors against fn on float64 tensors of the same values
    (whose gradients check_grad verifies): the output, and every gradient,
    within rtol of (|want| + max |want|). With ``exact`` (a NumPy function of
    the float32 arrays), the float32 output must equal it bit for bit."""
    arrays32 = [np.asarray(a, dtype=np.float32) for a in arrays]
    out, dout, grads = forward_backward(fn, arrays32, dtype=np.float32)
    want, _, wants = forward_backward(fn, arrays32, dtype=np.float64, dout=dout)
    if exact is not None:
        expected = np.asarray(exact(*arrays32))
        assert expected.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
    assert_within(out, want, rtol * (np.abs(want) + np.abs(want).max(initial=0)), "forward")
    for i, (g, w) in enumerate(zip(grads, wants)):
        assert_within(g, w, rtol * (np.abs(w) + np.abs(w).max(initial=0)), f"gradient {i}")


def gather_grads(numpy_fn, shapes, dout):
    """Gradients of out = numpy_fn(*xs) for an op that only moves, copies or
    drops elements: each input element gets the sum of dout over the places
    where it went."""
    sizes = [math.prod(s) for s in shapes]
    offsets = np.cumsum([0] + sizes)
    ids = [np.arange(o, o + n).reshape(s) for o, n, s in zip(offsets, sizes, shapes)]
    src = np.asarray(numpy_fn(*ids))
    total = np.bincount(src.ravel(), weights=np.asarray(dout, np.float64).ravel(),
                        minlength=int(offsets[-1]))
    return [total[o:o + n].reshape(s) for o, n, s in zip(offsets, sizes, shapes)]


# ================================================================ ops against the references
#
# A case: the fastnn op, its reference, how to make inputs from a spec, and
# the error the op may make in a given precision (eps). `tol` bounds the
# forward, `grad_tol` each gradient; both take the reference values and the
# float64 inputs.

class Case(NamedTuple):
    fn: Callable        # fastnn: (*tensors, *consts) -> Tensor
    forward: Callable   # reference: (*arrays, *consts) -> out
    backward: Callable  # reference: (dout, *arrays, *consts) -> grads
    make: Callable      # (spec, rng) -> (arrays, consts)
    tol: Callable       # (want, eps, arrays, consts) -> tolerance of the output
    grad_tol: Callable  # (wants, dout, eps, arrays, consts) -> a tolerance per gradient
    specs: tuple        # small inputs: sizes 0, 1, primes, vector tails
    big: Any = None     # an input that the kernels split over two threads
    smooth: bool = True  # whether central differences apply (max has ties)


def check_against_reference(case, arrays, consts, dtype):
    """case.fn on tensors of arrays in dtype against the reference: the
    output within case.tol, each gradient within case.grad_tol. Returns
    (out, grads)."""
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    out, dout, grads = forward_backward(case.fn, arrays, consts, dtype)
    x64 = [a.astype(np.float64) for a in arrays]
    dout64 = dout.astype(np.float64)
    eps = float(np.finfo(dtype).eps)
    want = case.forward(*x64, *consts)
    assert_within(out, want, case.tol(want, eps, x64, consts), "forward")
    wants = case.backward(dout64, *x64, *consts)
    assert len(wants) == len(grads)
    for i, (g, w, tol) in enumerate(zip(grads, wants, case.grad_tol(wants, dout64, eps, x64,
                                                                    consts))):
        assert_within(g, w, tol, f"gradient of input {i}")
    return out, grads


def _shifted(x, axis):
    """x minus its maximum along axis."""
    return x - x.max(axis=axis, keepdims=True) if x.size else x


def _exact(*_):
    return 0.0


def _exact_grads(wants, *_):
    return [0.0] * len(wants)


def _pointwise_tol(want, eps, xs, consts):
    return ulps(eps, want)


def _pointwise_grad_tol(wants, dout, eps, xs, consts):
    # dout * f'(x) from the rounded output: 1 - y (or 1 - y^2) loses its
    # relative precision near saturation, an error of eps * |dout|
    return [ulps(eps, wants[0], dout)]


def _softmax_tol(want, eps, xs, consts):
    # exp(x - max) errs by about eps * |x - max| relatively
    return ulps(eps, want * (1 + np.abs(_shifted(xs[0], consts[0]))))


def _softmax_grad_tol(wants, dout, eps, xs, consts):
    (x,), (axis,) = xs, consts
    if x.size == 0:
        return [0.0]
    y = ref.softmax_forward(x, axis)
    spread = 1 + np.abs(_shifted(x, axis)).max(axis=axis, keepdims=True)
    g = np.abs(dout)
    return [ulps(eps, wants[0], spread * y * (g + (g * y).sum(axis=axis, keepdims=True)))]


def _log_softmax_tol(want, eps, xs, consts):
    # (x - max) - log(sum): errors of the size of the terms, not of x itself
    (x,), (axis,) = xs, consts
    return ulps(eps, want, _shifted(x, axis), np.log(max(x.shape[axis], 1)) if x.ndim else 0)


def _log_softmax_grad_tol(wants, dout, eps, xs, consts):
    (x,), (axis,) = xs, consts
    p = ref.softmax_forward(x, axis)
    rows = np.abs(dout).sum(axis=axis, keepdims=True) if x.size else 0
    return [ulps(eps, wants[0], dout, p * (1 + np.abs(_shifted(x, axis))) * rows)]


def _cross_entropy_tol(want, eps, xs, consts):
    (x,), (labels,) = xs, consts
    s = _shifted(x, 1)
    return ulps(eps, want, np.log(x.shape[1]) + np.abs(s[np.arange(len(x)), labels]).mean())


def _cross_entropy_grad_tol(wants, dout, eps, xs, consts):
    (x,), _ = xs, consts
    p = ref.softmax_forward(x, 1)
    scale = abs(float(dout)) / len(x)
    return [ulps(eps, wants[0], scale * (1 + p * (1 + np.abs(_shifted(x, 1)))))]


def _linear_tol(want, eps, xs, consts):
    x, w = xs[0], xs[1]
    tol = gemm_tolerance(x.reshape(math.prod(x.shape[:-1]), w.shape[0]), w) * (eps / EPS32)
    if len(xs) == 3:
        tol = tol + ulps(eps, xs[2], k=2)
    return tol.reshape(np.shape(want))


def _linear_grad_tol(wants, dout, eps, xs, consts):
    x, w = xs[0], xs[1]
    n_in, n_out = w.shape
    x2 = x.reshape(math.prod(x.shape[:-1]), n_in)
    d2 = dout.reshape(len(x2), n_out)
    scale = eps / EPS32
    tols = [(gemm_tolerance(d2, w, trans_b=True) * scale).reshape(x.shape),
            gemm_tolerance(x2, d2, trans_a=True) * scale]
    if len(xs) == 3:
        tols.append(ulps(eps, np.abs(d2).sum(axis=0), k=4 + math.log2(len(d2) + 1)))
    return tols


def _mse_tol(want, eps, xs, consts):
    return ulps(eps, want, k=8 * (1 + math.sqrt(xs[0].size)))


def _normal(spec, rng):
    return [3 * rng.standard_normal(spec)], ()


def _rows(spec, rng):
    shape, axis = spec
    return [3 * rng.standard_normal(shape)], (axis,)


def _logits(spec, rng):
    return [3 * rng.standard_normal(spec)], (rng.integers(0, spec[1], spec[0]),)


def _linear_inputs(spec, rng):
    batch, n_in, n_out, bias = spec
    arrays = [rng.standard_normal(batch + (n_in,)), rng.standard_normal((n_in, n_out))]
    return arrays + ([rng.standard_normal(n_out)] if bias else []), ()


def _matmul_inputs(spec, rng):
    m, k, n = spec
    return [rng.standard_normal((m, k)), rng.standard_normal((k, n))], ()


def _ties(spec, rng):
    shape, axis, keepdims = spec
    return [rng.integers(0, 3, shape).astype(np.float64)], (axis, keepdims)  # many ties


UNARY_SPECS = ((), (1,), (7,), (3, 17), (2, 3, 33), (1, 1, 1), (0,), (2, 0))
ROW_SPECS = (((1, 1), -1), ((1, 7), -1), ((5, 17), -1), ((3, 4, 33), -1), ((3, 4, 33), 0),
             ((3, 4, 33), 1), ((3, 4, 5), -2), ((9,), 0), ((0, 5), -1), ((3, 0), -1))

KERNEL_CASES = {
    "relu": Case(F.relu, ref.relu_forward, ref.relu_backward, _normal, _exact, _exact_grads,
                 UNARY_SPECS, big=(70_001,)),
    "sigmoid": Case(F.sigmoid, ref.sigmoid_forward, ref.sigmoid_backward, _normal,
                    _pointwise_tol, _pointwise_grad_tol, UNARY_SPECS, big=(70_001,)),
    "tanh": Case(F.tanh, ref.tanh_forward, ref.tanh_backward, _normal, _pointwise_tol,
                 _pointwise_grad_tol, UNARY_SPECS, big=(70_001,)),
    "softmax": Case(lambda x, axis: F.softmax(x, axis=axis), ref.softmax_forward,
                    ref.softmax_backward, _rows, _softmax_tol, _softmax_grad_tol, ROW_SPECS,
                    big=((700, 101), -1)),
    "log_softmax": Case(lambda x, axis: F.log_softmax(x, axis=axis), ref.log_softmax_forward,
                        ref.log_softmax_backward, _rows, _log_softmax_tol,
                        _log_softmax_grad_tol, ROW_SPECS, big=((700, 101), -1)),
    "cross_entropy": Case(F.cross_entropy, ref.cross_entropy_forward,
                          ref.cross_entropy_backward, _logits, _cross_entropy_tol,
                          _cross_entropy_grad_tol, ((1, 1), (1, 7), (5, 17), (64, 10), (3, 33)),
                          big=(7001, 10)),
    "linear": Case(F.linear, ref.linear_forward, ref.linear_backward, _linear_inputs,
                   _linear_tol, _linear_grad_tol,
                   (((1,), 1, 1, True), ((7,), 13, 5, True), ((2, 3), 4, 5, True),
                    ((5,), 3, 4, False), ((), 4, 3, True), ((0,), 3, 4, True),
                    ((3,), 0, 4, True),
                    ((2, 3), 0, 4, True)),
                   big=((256,), 128, 96, True)),
    "matmul": Case(operator.matmul, ref.linear_forward, ref.linear_backward, _matmul_inputs,
                   _linear_tol, _linear_grad_tol,
                   ((1, 1, 1), (7, 13, 5), (2, 3, 4), (0, 3, 4), (3, 0, 4), (3, 4, 0)),
                   big=(256, 128, 96)),
}

# ops that run NumPy in both precisions but whose formulas are worth a reference
NUMPY_CASES = {
    "mse_loss": Case(F.mse_loss, ref.mse_loss_forward, ref.mse_loss_backward,
                     lambda spec, rng: ([rng.standard_normal(spec), rng.standard_normal(spec)],
                                        ()),
                     _mse_tol, lambda wants, dout, eps, *_: [ulps(eps, w) for w in wants],
                     ((1,), (7,), (3, 17), (2, 3, 4))),
    "max": Case(lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims),
                ref.max_forward, ref.max_backward, _ties, _exact,
                lambda wants, dout, eps, *_: [ulps(eps, wants[0], k=2)],
                (((3, 4, 5), None, False), ((3, 4, 5), None, True), ((3, 4, 5), 1, True),
                 ((3, 4, 5), (0, 2), False), ((3, 4, 5), -1, False), ((3, 4, 5), (-1, 0), True),
                 ((1, 4, 1), (0, -1), True), ((6,), 0, False), ((2, 2), 0, False)),
                smooth=False),
}
ALL_CASES = {**KERNEL_CASES, **NUMPY_CASES}


def _case_params(cases):
    return [pytest.param(name, spec, id=f"{name}-{spec}")
            for name, case in cases.items() for spec in case.specs]


@pytest.mark.parametrize("name,spec", _case_params(KERNEL_CASES))
def test_kernel_op_matches_reference_on_every_path(isa, name, spec):
    case = KERNEL_CASES[name]
    arrays, consts = case.make(spec, np.random.default_rng(0))
    check_against_reference(case, arrays, consts, np.float32)


@pytest.mark.parametrize("name,spec", _case_params(NUMPY_CASES))
def test_numpy_op_matches_reference_in_float32(name, spec):
    case = NUMPY_CASES[name]
    arrays, consts = case.make(spec, np.random.default_rng(0))
    check_against_reference(case, arrays, consts, np.float32)


@pytest.mark.parametrize("name,spec", _case_params(ALL_CASES))
def test_float64_op_matches_reference_and_central_differences(name, spec):
    case = ALL_CASES[name]
    arrays, consts = case.make(spec, np.random.default_rng(0))
    check_against_reference(case, arrays, consts, np.float64)
    if case.smooth and any(np.size(a) for a in arrays):
        check_grad(lambda *ts: case.fn(*ts, *consts), *[t64(a) for a in arrays])


@pytest.mark.parametrize("name", list(KERNEL_CASES))
def test_kernel_op_gives_the_same_bits_at_1_and_2_threads(isa, name):
    case = KERNEL_CASES[name]
    arrays, consts = case.make(case.big, np.random.default_rng(3))
    runs = []
    for n in (1, 2):
        with num_threads(n):
            runs.append(check_against_reference(case, arrays, consts, np.float32))
    (out1, grads1), (out2, grads2) = runs
    np.testing.assert_array_equal(out2, out1, err_msg="forward differs between 1 and 2 threads")
    for i, (g1, g2) in enumerate(zip(grads1, grads2)):
        np.testing.assert_array_equal(g2, g1, err_msg=f"gradient {i} differs between 1 and 2 "
                                                      "threads")


# ================================================================ extreme inputs

EXTREME_LOGITS = np.array([[1e4, -1e4, 0.0],
                           [-1e4, -1e4, -1e4],
                           [1e4, 1e4, -1e4],
                           [-1e4, 0.0, 1e4],
                           [1e4, 1e4, 1e4]])
EXTREME_LABELS = np.array([1, 0, 2, 0, 1])  # labels whose probability underflows to 0 too


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,logits,consts", [
    ("softmax", EXTREME_LOGITS, (-1,)),
    ("softmax", EXTREME_LOGITS.T, (0,)),
    ("log_softmax", EXTREME_LOGITS, (-1,)),
    ("log_softmax", EXTREME_LOGITS.T, (0,)),
    ("cross_entropy", EXTREME_LOGITS, (EXTREME_LABELS,)),
], ids=["softmax", "softmax_axis0", "log_softmax", "log_softmax_axis0", "cross_entropy"])
def test_extreme_logits_give_finite_exact_results(isa, name, logits, consts, dtype):
    out, grads = check_against_reference(KERNEL_CASES[name], [logits], consts, dtype)
    assert np.isfinite(out).all() and np.isfinite(grads[0]).all()


def test_cross_entropy_of_extreme_logits_is_the_exact_mean():
    loss = F.cross_entropy(t32(EXTREME_LOGITS), EXTREME_LABELS).item()
    want = (2e4 + math.log(3) + (2e4 + math.log(2)) + 2e4 + math.log(3)) / 5
    assert abs(loss - want) <= 2 * EPS32 * want


SPECIAL_VALUES = np.array([-100, -88, -20, -1, -0.625, -1e-3, -1e-20, -1e-30, 0.0, 1e-30, 1e-20,
                           1e-3, 0.625, 1, 20, 88, 100])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_at_saturation_zero_and_tiny_values(isa, name, dtype):
    # the tolerance is relative: tanh of a tiny x must be x to a few ulps
    out, (grad,) = check_against_reference(KERNEL_CASES[name], [SPECIAL_VALUES], (), dtype)
    x = SPECIAL_VALUES.astype(dtype)
    if name == "sigmoid":
        assert out[x == 0] == 0.5 and out[x == 100] == 1 and 0 <= out[x == -100] < 1e-40
    else:
        assert out[x == 0] == 0 and out[x == 100] == 1 and out[x == -100] == -1
        tiny = np.abs(x) <= 1e-20
        np.testing.assert_array_equal(out[tiny], x[tiny])


# ================================================================ broadcasting

BINARY_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "div": operator.truediv, "pow": operator.pow}
BROADCAST_SHAPES = [((3, 1, 4), (5, 4)), ((5, 4), (3, 1, 4)), ((2, 3), ()), ((), (2, 3)),
                    ((), ()), ((1,), (2, 1)), ((2, 1), (1, 3)), ((4, 1), (4,)), ((2, 3), (2, 3))]


def _operand(rng, shape):
    return rng.uniform(0.5, 2.0, shape)  # positive bases and denominators away from 0


@pytest.mark.parametrize("shape_a,shape_b", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("op", list(BINARY_OPS))
def test_binary_operator_broadcasts_and_sums_gradients_to_each_shape(op, shape_a, shape_b):
    f = BINARY_OPS[op]
    rng = np.random.default_rng(0)
    a, b = _operand(rng, shape_a), _operand(rng, shape_b)
    check_grad(f, t64(a), t64(b))
    check_float32_against_float64(f, a, b, exact=f)


@pytest.mark.parametrize("scalar_first", [False, True], ids=["tensor_op_scalar",
                                                             "scalar_op_tensor"])
@pytest.mark.parametrize("op", list(BINARY_OPS))
def test_binary_operator_with_a_python_scalar(op, scalar_first):
    f = BINARY_OPS[op]
    s = 1.5
    fn = (lambda x: f(s, x)) if scalar_first else (lambda x: f(x, s))
    x = _operand(np.random.default_rng(1), (2, 3))
    check_grad(fn, t64(x))
    check_float32_against_float64(fn, x, exact=fn)  # float32 stays float32


@pytest.mark.parametrize("op", list(BINARY_OPS))
def test_binary_operator_where_only_one_side_requires_grad(op):
    f = BINARY_OPS[op]
    rng = np.random.default_rng(2)
    a, b = _operand(rng, (3, 1)), _operand(rng, (4,))
    check_grad(f, t64(a), t64(b, requires_grad=False))
    check_grad(f, t64(a, requires_grad=False), t64(b))


@pytest.mark.parametrize("shape_a,shape_b", [((2, 0), (1, 0)), ((0, 3), (3,)), ((2, 0), (2, 1)),
                                             ((0,), ())], ids=str)
@pytest.mark.parametrize("op", list(BINARY_OPS))
def test_binary_operator_on_zero_size_shapes(op, shape_a, shape_b):
    a, b = t32(np.ones(shape_a)), t32(np.full(shape_b, 2.0))
    out = BINARY_OPS[op](a, b)
    assert out.shape == np.broadcast_shapes(shape_a, shape_b)
    out.backward(np.ones(out.shape, np.float32))
    assert a.grad.shape == shape_a
    # nothing flowed into b: its gradient is a sum of no terms
    np.testing.assert_array_equal(b.grad.numpy(), np.zeros(shape_b, np.float32))


def test_unary_minus_negates_values_and_gradients():
    x = np.random.default_rng(3).standard_normal((2, 5))
    check_grad(operator.neg, t64(x))
    check_float32_against_float64(operator.neg, x, exact=np.negative)
    check_float32_against_float64(F.neg, x, exact=np.negative)


ZERO_DIM_OPS = {
    "neg": operator.neg, "exp": F.exp, "log": F.log, "sqrt": F.sqrt,
    "clip": lambda t: t.clip(0.0, 0.5), "relu": F.relu, "sigmoid": F.sigmoid, "tanh": F.tanh,
    "add_scalar": lambda t: t + 1.5, "rsub_scalar": lambda t: 1.5 - t,
    "mul_scalar": lambda t: t * 3.0, "div_scalar": lambda t: t / 4.0,
    "rdiv_scalar": lambda t: 4.0 / t, "pow_scalar": lambda t: t ** 3, "sum": F.sum,
    "mean": F.mean, "max": F.max, "reshape": lambda t: t.reshape(1, 1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ZERO_DIM_OPS))
def test_zero_dim_tensor_goes_through_op_like_a_one_element_one(name, dtype):
    fn = ZERO_DIM_OPS[name]
    out0, dout0, (g0,) = forward_backward(fn, [np.array(0.75)], dtype=dtype)
    shape1 = fn(fastnn.tensor(np.array([0.75], dtype), dtype=dtype)).shape
    out1, _, (g1,) = forward_backward(fn, [np.array([0.75])], dtype=dtype,
                                      dout=np.reshape(dout0, shape1))
    np.testing.assert_array_equal(out0, out1.reshape(out0.shape))
    np.testing.assert_array_equal(g0, g1.reshape(()))
    if dtype == np.float64:
        check_grad(fn, t64(0.75))


# ================================================================ pointwise maths

POINTWISE = {  # fastnn op, NumPy op, its derivative, inputs kept away from kinks
    "exp": (F.exp, np.exp, np.exp, lambda r: r.standard_normal((3, 7))),
    "log": (F.log, np.log, lambda x: 1 / x, lambda r: r.uniform(0.1, 5, (3, 7))),
    "sqrt": (F.sqrt, np.sqrt, lambda x: 0.5 / np.sqrt(x), lambda r: r.uniform(0.1, 5, (3, 7))),
    "abs": (F.abs, np.abs, np.sign,
            lambda r: r.uniform(0.1, 3, (3, 7)) * r.choice([-1, 1], (3, 7))),
    "clip": (lambda t: t.clip(-1.0, 1.2), lambda x: np.clip(x, -1.0, 1.2),
             lambda x: ((x >= -1) & (x <= 1.2)).astype(float),
             lambda r: r.uniform(0.5, 3, (3, 7)) * r.choice([-1, 1], (3, 7))),
}


@pytest.mark.parametrize("name", list(POINTWISE))
def test_pointwise_op_matches_numpy_and_its_derivative(name):
    fn, numpy_fn, derivative, make = POINTWISE[name]
    x = make(np.random.default_rng(4))
    check_grad(fn, t64(x))
    out, dout, (g,) = forward_backward(fn, [x.astype(np.float32)])
    x64 = x.astype(np.float32).astype(np.float64)
    want = numpy_fn(x64)
    assert_within(out, want, ulps(EPS32, want, k=2), "forward")
    want_g = dout * derivative(x64)
    assert_within(g, want_g, ulps(EPS32, want_g, k=4), "gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (-1.0, None), (None, 1.0)])
def test_clip_passes_the_gradient_inside_and_at_the_bounds(lo, hi, dtype):
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    out, dout, (g,) = forward_backward(lambda t: F.clip(t, lo, hi), [x], dtype=dtype)
    np.testing.assert_array_equal(out, np.clip(x, lo, hi))
    inside = np.ones(x.shape, bool)
    if lo is not None:
        inside &= x >= lo
    if hi is not None:
        inside &= x <= hi
    np.testing.assert_array_equal(g, np.where(inside, dout, 0))


def test_clip_without_bounds_raises():
    with pytest.raises(ValueError):
        F.clip(t32([1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_with_tensor_exponent_and_zero_base(dtype):
    # d/db a^b = a^b log a, taken as 0 where a == 0 and b >= 0 (docstring);
    # d/da = b a^(b-1)
    a = np.array([0.0, 0.0, 0.0, 1.5, 2.0, 0.5])
    b = np.array([2.0, 3.0, 1.0, 1.5, -1.0, 0.0])
    out, dout, (ga, gb) = forward_backward(operator.pow, [a, b], dtype=dtype)
    eps = float(np.finfo(dtype).eps)
    want = a ** b
    assert_within(out, want, ulps(eps, want, k=4), "forward")
    want_ga = dout * np.array([0.0, 0.0, 1.0, 1.5 * 1.5 ** 0.5, -0.25, 0.0])
    want_gb = dout * np.array([0.0, 0.0, 0.0, 1.5 ** 1.5 * math.log(1.5), 0.5 * math.log(2.0),
                               math.log(0.5)])
    assert_within(ga, want_ga, ulps(eps, want_ga, k=8), "gradient of the base")
    assert_within(gb, want_gb, ulps(eps, want_gb, k=8), "gradient of the exponent")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("exponent", ["python_zero", "tensor_zeros"])
def test_pow_gradient_wrt_base_is_zero_where_exponent_is_zero(exponent, dtype):
    # x ** 0 is 1 for every x, so its derivative is 0 everywhere, x == 0
    # included (as in PyTorch)
    x = np.array([0.0, 1.5, -2.0])
    if exponent == "python_zero":
        out, dout, (g,) = forward_backward(lambda t: t ** 0, [x], dtype=dtype)
    else:
        out, dout, (g, _) = forward_backward(operator.pow, [x, np.zeros(3)], dtype=dtype)
    np.testing.assert_array_equal(out, np.ones(3))
    np.testing.assert_array_equal(g, np.zeros(3))


def test_pow_of_a_constant_base_to_a_tensor_exponent():
    x = np.random.default_rng(5).standard_normal((2, 3))
    check_grad(lambda t: 2.0 ** t, t64(x))
    check_float32_against_float64(lambda t: 2.0 ** t, x, exact=lambda a: 2.0 ** a)


# ================================================================ reductions

REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}
AXES = [(None, False), (None, True), (0, False), (-1, True), (1, False), ((0, 2), False),
        ((-1, 0), True), ((-3, -2, -1), False)]


def _expected_reduction_grad(name, x, dout, axis, keepdims):
    axes = ref._axes(axis, x.ndim)
    if name == "max":
        return ref.max_backward(dout, x, axis, keepdims)[0]
    if name == "min":  # the maximum of -x, its gradient negated twice
        return ref.max_backward(dout, -x, axis, keepdims)[0]
    g = dout if keepdims else np.expand_dims(dout, axes)
    count = math.prod(x.shape[a] for a in axes)
    return np.broadcast_to(g / count if name == "mean" else g, x.shape)


@pytest.mark.parametrize("axis,keepdims", AXES, ids=str)
@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 4, 1)], ids=str)
@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_matches_numpy_with_its_gradient(name, shape, axis, keepdims):
    x = np.random.default_rng(6).standard_normal(shape)  # distinct values: max has no ties
    fn = lambda t: getattr(F, name)(t, axis=axis, keepdims=keepdims)  # noqa: E731
    check_grad(fn, t64(x))
    out, dout, (g,) = forward_backward(fn, [x])
    x64 = x.astype(np.float32).astype(np.float64)
    want = REDUCTIONS[name](x64, axis=axis, keepdims=keepdims)
    assert_within(out, want, ulps(EPS32, np.sum(np.abs(x64), axis=axis, keepdims=keepdims)),
                  "forward")
    want_g = _expected_reduction_grad(name, x64, dout.astype(np.float64), axis, keepdims)
    assert_within(g, want_g, ulps(EPS32, want_g, k=2), "gradient")


def test_reduction_methods_are_the_functional_ops():
    x = t32(np.arange(6.0).reshape(2, 3))
    for name in REDUCTIONS:
        np.testing.assert_array_equal(getattr(x, name)(axis=-1, keepdims=True).numpy(),
                                      REDUCTIONS[name](x.numpy(), axis=-1, keepdims=True))


@pytest.mark.parametrize("name,shape,axis,keepdims", [
    ("sum", (0, 3), None, False), ("sum", (0, 3), 0, False), ("sum", (0, 3), 0, True),
    ("sum", (2, 0), 1, False), ("sum", (2, 0), 1, True), ("sum", (2, 0), 0, False),
    ("mean", (0, 3), 1, False), ("mean", (2, 0), 0, True), ("max", (0, 3), 1, False),
    ("max", (2, 0), 0, True),
], ids=str)
def test_reduction_over_zero_size_dimensions(name, shape, axis, keepdims):
    x = t32(np.zeros(shape))
    out = getattr(F, name)(x, axis=axis, keepdims=keepdims)
    want = REDUCTIONS[name](np.zeros(shape, np.float32), axis=axis, keepdims=keepdims)
    assert out.shape == want.shape
    np.testing.assert_array_equal(out.numpy(), want)
    out.backward(np.ones(out.shape, np.float32))
    assert x.grad.shape == shape


@pytest.mark.parametrize("shape,axis", [((0, 3), None), ((0, 3), 0), ((2, 0), 1)], ids=str)
def test_max_over_an_empty_axis_raises(shape, axis):
    with pytest.raises(ValueError):
        F.max(t32(np.zeros(shape)), axis=axis)


def test_max_splits_the_gradient_equally_among_ties():
    x = t32([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [5.0, 0.0, 4.0]])
    x.max(axis=1).backward(np.array([1.0, 3.0, 2.0], np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [1, 1, 1], [2, 0, 0]])
    y = t32([[2.0, 7.0], [7.0, 7.0]])
    y.max().backward()
    np.testing.assert_array_equal(y.grad.numpy(), np.float32(1 / 3) * np.array([[0, 1], [1, 1]]))


# ================================================================ matmul shapes

MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
                 ((2, 3, 4), (2, 4, 5)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((1, 4), (4, 1))]


@pytest.mark.parametrize("shape_a,shape_b", MATMUL_SHAPES, ids=str)
def test_matmul_follows_numpy_shape_rules_with_gradients(shape_a, shape_b):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    check_grad(operator.matmul, t64(a), t64(b))
    check_grad(F.matmul, t64(a), t64(b))
    out = t32(a, requires_grad=False) @ t32(b, requires_grad=False)
    want = np.matmul(a.astype(np.float32).astype(np.float64), b.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == want.shape
    check_float32_against_float64(operator.matmul, a, b)


@pytest.mark.parametrize("shape_a,shape_b", [((3, 4), (5, 6)), ((4,), (3,)), ((), (3,)),
                                             ((2, 3, 4), (3, 4, 5))], ids=str)
def test_matmul_of_mismatched_shapes_raises(shape_a, shape_b):
    with pytest.raises(ValueError):
        t32(np.ones(shape_a)) @ t32(np.ones(shape_b))


# ================================================================ moving elements
#
# Indexing, reshape, transpose, permute, concatenate and stack only move,
# copy or drop elements: the forward must equal NumPy's bit for bit, and each
# input element's gradient is the sum of the upstream gradient over the
# places it went (gather_grads), repeated indices adding up.

MASK = np.arange(60).reshape(4, 5, 3) % 3 == 0
MOVES = {  # name: (input shapes, fastnn op, the same in NumPy)
    "slice": ([(4, 5, 3)], lambda t: t[1:3], lambda a: a[1:3]),
    "negative_steps": ([(4, 5, 3)], lambda t: t[::-1, 3:0:-2], lambda a: a[::-1, 3:0:-2]),
    "int_and_slice": ([(4, 5, 3)], lambda t: t[2, 1:], lambda a: a[2, 1:]),
    "negative_int": ([(4, 5, 3)], lambda t: t[-1], lambda a: a[-1]),
    "one_element": ([(4, 5, 3)], lambda t: t[1, -2, 0], lambda a: a[1, -2, 0]),
    "ellipsis": ([(4, 5, 3)], lambda t: t[..., 1], lambda a: a[..., 1]),
    "none": ([(4, 5, 3)], lambda t: t[None, 1:3, None], lambda a: a[None, 1:3, None]),
    "none_and_ellipsis": ([(4, 5, 3)], lambda t: t[..., None, ::-1],
                          lambda a: a[..., None, ::-1]),
    "int_list_with_repeats": ([(4, 5, 3)], lambda t: t[[0, 2, 0, 0]], lambda a: a[[0, 2, 0, 0]]),
    "int_array_2d_with_repeats": ([(4, 5, 3)], lambda t: t[np.array([[3, 3], [1, 3]])],
                                  lambda a: a[np.array([[3, 3], [1, 3]])]),
    "int_tensor_with_repeats": ([(4, 5, 3)], lambda t: t[fastnn.tensor([1, 1, 3])],
                                lambda a: a[np.array([1, 1, 3])]),
    "int_array_pairs": ([(4, 5, 3)], lambda t: t[np.array([0, 0, 3]), np.array([1, 1, 4])],
                        lambda a: a[np.array([0, 0, 3]), np.array([1, 1, 4])]),
    "slice_then_int_array": ([(4, 5, 3)], lambda t: t[:, [4, 4, 0], 1:],
                             lambda a: a[:, [4, 4, 0], 1:]),
    "bool_mask": ([(4, 5, 3)], lambda t: t[MASK], lambda a: a[MASK]),
    "bool_rows": ([(4, 5, 3)], lambda t: t[np.array([True, False, True, True])],
                  lambda a: a[np.array([True, False, True, True])]),
    "bool_mask_none_selected": ([(4, 5, 3)], lambda t: t[np.zeros(4, bool)],
                                lambda a: a[np.zeros(4, bool)]),
    "reshape_flat": ([(2, 3, 4)], lambda t: t.reshape(-1), lambda a: a.reshape(-1)),
    "reshape_minus_one": ([(2, 3, 4)], lambda t: t.reshape(4, -1), lambda a: a.reshape(4, -1)),
    "reshape_tuple_minus_one": ([(2, 3, 4)], lambda t: F.reshape(t, (3, -1, 2)),
                                lambda a: a.reshape(3, -1, 2)),
    "reshape_adds_ones": ([(2, 3, 4)], lambda t: t.reshape(1, 6, 1, 4),
                          lambda a: a.reshape(1, 6, 1, 4)),
    "transpose_reverses": ([(2, 3, 4)], lambda t: t.transpose(), lambda a: a.transpose()),
    "transpose_swaps_two": ([(2, 3, 4)], lambda t: t.transpose(0, 2),
                            lambda a: np.swapaxes(a, 0, 2)),
    "transpose_swaps_negative": ([(2, 3, 4)], lambda t: t.transpose(-1, 1),
                                 lambda a: np.swapaxes(a, -1, 1)),
    "transpose_permutation": ([(2, 3, 4)], lambda t: F.transpose(t, 2, 0, 1),
                              lambda a: a.transpose(2, 0, 1)),
    "transpose_2d": ([(3, 5)], lambda t: t.transpose(1, 0), lambda a: a.T),
    "T_2d": ([(3, 5)], lambda t: t.T, lambda a: a.T),
    "permute": ([(2, 3, 4)], lambda t: t.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0)),
    "permute_negative": ([(2, 3, 4)], lambda t: F.permute(t, (-1, 0, -2)),
                         lambda a: a.transpose(2, 0, 1)),
    "concatenate_axis0": ([(2, 3), (4, 3)], lambda *ts: F.concatenate(ts, axis=0),
                          lambda *xs: np.concatenate(xs, axis=0)),
    "concatenate_negative_axis": ([(2, 3), (4, 3)], lambda *ts: fastnn.concatenate(ts, axis=-2),
                                  lambda *xs: np.concatenate(xs, axis=-2)),
    "concatenate_three_last_axis": ([(2, 3), (2, 1), (2, 2)],
                                    lambda *ts: F.concatenate(list(ts), axis=-1),
                                    lambda *xs: np.concatenate(xs, axis=-1)),
    "concatenate_with_empty": ([(0, 3), (2, 3)], lambda *ts: F.concatenate(ts, axis=0),
                               lambda *xs: np.concatenate(xs, axis=0)),
    "stack_axis0": ([(2, 3)] * 3, lambda *ts: F.stack(ts, axis=0),
                    lambda *xs: np.stack(xs, axis=0)),
    "stack_axis1": ([(2, 3)] * 3, lambda *ts: F.stack(ts, axis=1),
                    lambda *xs: np.stack(xs, axis=1)),
    "stack_negative_axis": ([(2, 3)] * 3, lambda *ts: fastnn.stack(ts, axis=-1),
                            lambda *xs: np.stack(xs, axis=-1)),
    "stack_most_negative_axis": ([(2, 3)] * 2, lambda *ts: F.stack(list(ts), axis=-3),
                                 lambda *xs: np.stack(xs, axis=-3)),
}


@pytest.mark.parametrize("name", list(MOVES))
def test_moving_op_matches_numpy_and_gathers_gradients(name):
    shapes, fn, numpy_fn = MOVES[name]
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    out, dout, grads = forward_backward(fn, arrays)
    np.testing.assert_array_equal(out, numpy_fn(*arrays))
    wants = gather_grads(numpy_fn, shapes, dout)
    spread = gather_grads(numpy_fn, shapes, np.abs(dout))
    for i, (g, w, s) in enumerate(zip(grads, wants, spread)):
        assert_within(g, w, ulps(EPS32, s, k=2), f"gradient of input {i}")
    if any(math.prod(s) for s in shapes):
        check_grad(fn, *[t64(a) for a in arrays])


def test_repeated_indices_add_up_their_gradients():
    x = t32([1.0, 2.0, 3.0])
    (x[[0, 0, 2, 0]] * fastnn.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1011.0, 0.0, 100.0])


# ================================================================ dropout

def dropout_grad(x, rate, dtype=np.float32, seed=None, dout=None):
    """(out, dout, grad) of F.dropout(x, rate) in dtype, after manual_seed(seed) if given."""
    if seed is not None:
        fastnn.manual_seed(seed)
    out, dout, (g,) = forward_backward(lambda t: F.dropout(t, rate), [x], dtype=dtype, dout=dout)
    return out, dout, g


def _nonzero(shape, seed=9):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_scales_kept_values_by_one_over_keep_probability(isa, rate, dtype):
    # the reference given the mask that fastnn drew (x has no zeros, so out
    # is 0 exactly where the element was dropped)
    x = _nonzero((1, 997))
    out, dout, g = dropout_grad(x, rate, dtype, seed=11)
    keep = out != 0
    assert 0 < keep.sum() < keep.size
    eps = float(np.finfo(dtype).eps)
    want = ref.dropout_forward(x.astype(dtype), keep, rate)
    assert_within(out, want, ulps(eps, want, k=4), "forward")
    want_g = ref.dropout_backward(dout, keep, rate)[0]
    assert_within(g, want_g, ulps(eps, want_g, k=4), "gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_backward_applies_each_calls_own_mask(dtype):
    # grad == dout * out / x for each call, and two calls draw two masks
    x = _nonzero((4, 250))
    t = fastnn.tensor(x.astype(dtype), requires_grad=True, dtype=dtype)
    fastnn.manual_seed(12)
    d1, d2 = F.dropout(t, 0.5), F.dropout(t, 0.5)
    dout = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    (d1 + 2 * d2).backward(dout)
    assert not np.array_equal(d1.numpy() != 0, d2.numpy() != 0)
    want = dout * (d1.numpy() / x + 2 * d2.numpy() / x)
    assert_within(t.grad.numpy(), want, ulps(float(np.finfo(dtype).eps), want, k=4))


def test_dropout_gradient_matches_central_differences():
    def fn(t):
        fastnn.manual_seed(4)  # the same mask for every evaluation
        return F.dropout(t, 0.3)
    check_grad(fn, t64(_nonzero((3, 11))))


def test_dropout_with_the_same_seed_repeats_its_masks_and_successive_calls_differ():
    x = np.ones(1000, np.float32)
    fastnn.manual_seed(5)
    first = [F.dropout(t32(x, False), 0.5).numpy() for _ in range(2)]
    fastnn.manual_seed(5)
    again = [F.dropout(t32(x, False), 0.5).numpy() for _ in range(2)]
    fastnn.manual_seed(6)
    other = F.dropout(t32(x, False), 0.5).numpy()
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    # masks of 1000 independent halves agree in about 500 places, never 1000
    assert (first[0] == first[1]).sum() < 600
    assert (first[0] == other).sum() < 600


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keeps_about_one_minus_rate_of_the_elements(isa, rate):
    # 5 sigma of a binomial count: a correct mask fails with probability
    # 6e-7 per seed, and the seed is fixed
    n = 100_000
    fastnn.manual_seed(13)
    kept = int((F.dropout(t32(np.ones(n), False), rate).numpy() != 0).sum())
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * (1 - rate)) <= 5 * sigma, f"kept {kept} of {n} at rate {rate}"


def test_dropout_mask_does_not_depend_on_thread_count_or_simd_path(isa):
    x = np.ones(70_001, np.float32)
    with forced_isa("generic"), num_threads(1):
        fastnn.manual_seed(14)
        want = F.dropout(t32(x, False), 0.5).numpy()
    for n in (1, 2):
        with num_threads(n):
            fastnn.manual_seed(14)
            np.testing.assert_array_equal(F.dropout(t32(x, False), 0.5).numpy(), want,
                                          err_msg=f"{isa} at {n} threads")
    # the two threads' halves draw different masks
    assert not np.array_equal(want[:35_000], want[35_000:70_000])


def test_dropout_masks_agree_between_float32_and_float64():
    x = _nonzero((50, 40))
    out32, _, _ = dropout_grad(x, 0.3, np.float32, seed=15)
    out64, _, _ = dropout_grad(x, 0.3, np.float64, seed=15)
    np.testing.assert_array_equal(out32 != 0, out64 != 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate,training", [(0.5, False), (0.0, True), (0.0, False)])
def test_dropout_outside_training_or_at_rate_zero_is_the_identity(rate, training, dtype):
    x = _nonzero((3, 7))
    out, dout, (g,) = forward_backward(lambda t: F.dropout(t, rate, training=training), [x],
                                       dtype=dtype)
    np.testing.assert_array_equal(out, x.astype(dtype))
    np.testing.assert_array_equal(g, dout)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_rate_outside_zero_one_raises(rate):
    with pytest.raises(ValueError):
        F.dropout(t32(np.ones(4)), rate)
