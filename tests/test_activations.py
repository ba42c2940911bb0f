"""Keras's activations as kernels (fastnn._C): value and gradient on every
SIMD path against the float64 NumPy formulas of tests/reference/ops.py
(PyTorch's), special values included, and the same names and keywords on
the GPU module's stand-in."""
import numpy as np
import pytest
from reference import ops as ref
from reference.checks import assert_within

from fastnn import _C

NAMES = sorted(ref.ACTIVATIONS)
# relative: the float32 rounding of the result plus the kernels'
# approximations (exp, tanh, erfc: a few 1e-7); absolute: the rounding of
# the terms a float32 formula adds, about |x| ulp (1 + tanh(u) near -1
# cancels, as in PyTorch's own float32 kernels), capped at |x| = 10
RTOL, ATOL = 4e-6, 2e-7
SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.5, -0.5, 2.9999, -2.9999, 3.0,
                    -3.0, 10.0, -10.0, 20.0, -20.0, 30.0, -30.0, 88.0, -88.0, 100.0, -100.0,
                    1e3, -1e3, 1e4, -1e4, np.nan], np.float32)


def params_of(name):
    """The parameter keywords to try: the default, and another value."""
    key, default = ref.ACTIVATIONS[name][2:]
    return [{}] if key is None else [{}, {key: 0.7}]


def check(name, x, param, what):
    p = next(iter(param.values()), None)
    y = getattr(_C, name)(x, **param)
    dy = np.linspace(-2, 2, x.size, dtype=np.float32).reshape(x.shape)
    dx = getattr(_C, name + "_backward")(x, dy, **param)
    scale = 1 + np.minimum(np.nan_to_num(np.abs(x.astype(np.float64))), 10)
    for got, want, kind, atol in (
            (y, ref.activation_forward(name, x, p), "value", ATOL * scale),
            (dx, ref.activation_backward(name, dy, x, p)[0], "gradient",
             ATOL * scale * np.maximum(np.abs(dy), 1))):
        with np.errstate(over="ignore", invalid="ignore"):
            want32 = want.astype(np.float32).astype(np.float64)  # overflow: inf, as float32 does
        nan, inf = np.isnan(want32), np.isinf(want32)
        assert np.array_equal(np.isnan(got), nan), f"{name} {kind} {what}: NaN where {nan}"
        assert np.array_equal(got[inf], want32[inf]), f"{name} {kind} {what}: overflow"
        finite = ~(nan | inf)
        assert_within(np.where(finite, got, 0), np.where(finite, want32, 0),
                      atol + RTOL * np.abs(np.where(finite, want32, 0)),
                      f"{name}{param} {kind} {what}", dtype=np.float32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [0, 1, 7, 33, 1000, 70001])
def test_activation_matches_reference_on_every_path(name, n, isa, threads):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    for param in params_of(name):
        check(name, x, param, f"n={n} on {isa}")


@pytest.mark.parametrize("name", NAMES)
def test_activation_at_special_values(name, isa):
    """Large |x| (no overflow into NaN), 0 and -0, tiny values, the kinks,
    and NaN propagating as PyTorch's formula lets it."""
    for param in params_of(name):
        check(name, SPECIAL, param, f"special values on {isa}")


@pytest.mark.parametrize("name", NAMES)
def test_activation_keeps_shape_and_leaves_input(name):
    x = np.linspace(-5, 5, 24, dtype=np.float32).reshape(2, 3, 4)
    before = x.copy()
    y = getattr(_C, name)(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(x, before)


def test_activation_defaults_are_keras():
    """leaky_relu's slope defaults to Keras's 0.2, elu's alpha to 1."""
    x = np.array([-2.0, 3.0], np.float32)
    np.testing.assert_allclose(_C.leaky_relu(x), [-0.4, 3.0], rtol=1e-7)
    np.testing.assert_allclose(_C.leaky_relu(x, negative_slope=0.01), [-0.02, 3.0], rtol=1e-7)
    np.testing.assert_allclose(_C.elu(x), [np.expm1(-2.0), 3.0], rtol=1e-6)
    np.testing.assert_allclose(_C.hard_sigmoid(np.array([-3, 0, 3], np.float32)), [0, 0.5, 1])


def test_activation_bindings_check_memory_safety():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="gelu: argument 'x' must be float32"):
        _C.gelu(x.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.gelu(x[:, ::2])
    with pytest.raises(ValueError, match="same shape"):
        _C.gelu_backward(x, x[:2].copy())
    with pytest.raises(TypeError):
        _C.gelu("abc")


@pytest.mark.parametrize("name", NAMES)
def test_gpu_module_has_the_same_names_and_keywords(name, fake_gpu):
    """tests/fake_cuda.py stands in for _C_cuda with the same signatures: the
    Python layer's GPU path calls name(x, **param) and name_backward(x, dy)."""
    from fastnn import _backend, cuda
    x = np.linspace(-4, 4, 10, dtype=np.float32)
    dx = cuda.to_device(x)
    for param in params_of(name):
        got = _backend.GPU.pointwise(name, dx, **param).numpy()
        np.testing.assert_allclose(got, _backend.CPU.pointwise(name, x, **param), rtol=1e-5,
                                   atol=1e-6)
        g = _backend.GPU.pointwise_backward(name, dx, dx, **param).numpy()
        np.testing.assert_allclose(g, _backend.CPU.pointwise_backward(name, x, x, **param),
                                   rtol=1e-5, atol=1e-6)
    assert fake_gpu.calls[name] == len(params_of(name))


# ---------------------------------------------------------------- F's thin ops
TORCH_OF = {  # F's op and keywords -> PyTorch's
    ("elu", ()): lambda t, x: t.nn.functional.elu(x),
    ("elu", (("alpha", 0.5),)): lambda t, x: t.nn.functional.elu(x, alpha=0.5),
    ("selu", ()): lambda t, x: t.nn.functional.selu(x),
    ("gelu", ()): lambda t, x: t.nn.functional.gelu(x),
    ("gelu", (("approximate", True),)): lambda t, x: t.nn.functional.gelu(x, approximate="tanh"),
    ("silu", ()): lambda t, x: t.nn.functional.silu(x),
    ("swish", ()): lambda t, x: t.nn.functional.silu(x),
    ("softplus", ()): lambda t, x: t.nn.functional.softplus(x),
    ("softsign", ()): lambda t, x: t.nn.functional.softsign(x),
    ("leaky_relu", ()): lambda t, x: t.nn.functional.leaky_relu(x, 0.2),
    ("leaky_relu", (("negative_slope", 0.01),)): lambda t, x: t.nn.functional.leaky_relu(x, 0.01),
    ("hard_sigmoid", ()): lambda t, x: t.nn.functional.hardsigmoid(x),
    ("exponential", ()): lambda t, x: t.exp(x),
}


@pytest.mark.parametrize("op,kw", list(TORCH_OF), ids=lambda v: str(v))
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_functional_op_matches_pytorch(op, kw, device, request):
    """F's op and its gradient through autograd against PyTorch's function,
    on the CPU and on the (fake) GPU."""
    torch = pytest.importorskip("torch")
    import fastnn
    import fastnn.functional as F
    if device == "cuda":
        request.getfixturevalue("fake_gpu")
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32) * 3
    x.flat[:4] = [0.0, -3.0, 3.0, 40.0]
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    xd = fastnn.tensor(x, requires_grad=True).to(device)
    y = getattr(F, op)(xd, **dict(kw))
    (y * fastnn.tensor(g).to(device)).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    ty = TORCH_OF[op, kw](torch, tx)
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(xd.grad.numpy(), tx.grad.numpy(), rtol=2e-5, atol=2e-6)


def test_functional_ops_check_their_parameter():
    import fastnn.functional as F
    with pytest.raises(TypeError, match="leaky_relu: argument 'negative_slope' must be a real"):
        F.leaky_relu(np.ones(3, np.float32), negative_slope="0.1")
    with pytest.raises(TypeError, match="elu: argument 'alpha'"):
        F.elu(np.ones(3, np.float32), alpha=None)


# Keras's names, as activation= and Activation take them, with the kernel and
# parameter each one stands for (Keras's defaults: gelu exact, slope 0.2)
KERAS_NAMES = {"elu": ("elu", None), "selu": ("selu", None), "gelu": ("gelu", None),
               "silu": ("silu", None), "swish": ("silu", None), "softplus": ("softplus", None),
               "softsign": ("softsign", None), "leaky_relu": ("leaky_relu", 0.2),
               "hard_sigmoid": ("hard_sigmoid", None), "exponential": ("exponential", None)}


@pytest.mark.parametrize("keras_name", sorted(KERAS_NAMES))
def test_layers_take_keras_activation_names(keras_name):
    import fastnn
    from fastnn import nn
    kernel, p = KERAS_NAMES[keras_name]
    x = np.random.default_rng(3).normal(0, 2, (4, 7)).astype(np.float32)
    t = fastnn.tensor(x, requires_grad=True)
    y = nn.Activation(keras_name)(t)
    y.sum().backward()
    assert_within(y.numpy(), ref.activation_forward(kernel, x, p), 1e-5 * (1 + np.abs(x)),
                  f"Activation({keras_name!r})", dtype=np.float32)
    assert_within(t.grad.numpy(), ref.activation_backward(kernel, np.ones_like(x), x, p)[0],
                  1e-5 * (1 + np.abs(x)), f"Activation({keras_name!r}) gradient",
                  dtype=np.float32)
    dense = nn.Dense(3, activation=keras_name)
    out = dense(fastnn.tensor(x))
    pre = x.astype(np.float64) @ dense.kernel.numpy() + dense.bias.numpy()
    want = ref.activation_forward(kernel, pre, p)
    # the float32 pre-activation's error passes through the activation times its slope,
    # which for "exponential" is the output itself (random weights: up to e^6 or so)
    assert_within(out.numpy(), want, 1e-5 * (1 + np.abs(pre)) * np.maximum(1, np.abs(want)),
                  f"Dense(activation={keras_name!r})", dtype=np.float32)
