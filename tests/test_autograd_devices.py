"""The ops on GPU tensors: each op's value and gradients on the device path
equal the CPU path's. Without a GPU the device is tests/fake_cuda.py (NumPy
behind the _C_cuda interface), which checks the Python side: dispatch,
device checks, moving tensors and gradients. With a GPU the same cases run
on the real kernels."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F

RNG = np.random.default_rng(0)


def rand(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def positive(*shape):
    return rand(*shape, low=0.5, high=2.0)


LABELS = np.array([2, 0, 1, 2, 1], np.int64)

# name -> (op on tensors, input arrays)
CASES = {
    "add_broadcast": (lambda a, b: a + b, [rand(3, 1, 4), rand(5, 4)]),
    "add_scalar": (lambda a: 2.5 + a, [rand(3, 4)]),
    "sub_broadcast": (lambda a, b: a - b, [rand(2, 3), rand(3)]),
    "rsub_scalar": (lambda a: 1.0 - a, [rand(4)]),
    "mul_broadcast": (lambda a, b: a * b, [rand(4, 1), rand(1, 5)]),
    "div": (lambda a, b: a / b, [rand(3, 4), positive(3, 4)]),
    "rdiv_scalar": (lambda a: 3.0 / a, [positive(6)]),
    "pow_2": (lambda a: a ** 2, [rand(3, 3)]),
    "pow_3": (lambda a: a ** 3, [rand(3, 3)]),
    "pow_tensor_at_zero": (lambda a, b: a ** b, [np.array([0.0, 0.0, 2.0], np.float32),
                                                 np.array([0.0, 2.0, 3.0], np.float32)]),
    "neg": (lambda a: -a, [rand(2, 5)]),
    "exp": (lambda a: a.exp(), [rand(7)]),
    "log": (lambda a: a.log(), [positive(7)]),
    "sqrt": (lambda a: a.sqrt(), [positive(2, 3)]),
    "sum_all": (lambda a: a.sum(), [rand(3, 4, 5)]),
    "sum_axes": (lambda a: a.sum(axis=(0, 2)), [rand(3, 4, 5)]),
    "sum_keepdims": (lambda a: a.sum(axis=-1, keepdims=True), [rand(3, 4)]),
    "mean_axis": (lambda a: a.mean(axis=1), [rand(3, 4, 2)]),
    "max_axis": (lambda a: a.max(axis=0), [rand(5, 3)]),
    "max_all_keepdims": (lambda a: a.max(axis=None, keepdims=True), [rand(2, 3)]),
    "reshape": (lambda a: a.reshape(4, -1) * 2.0, [rand(2, 3, 2)]),
    "transpose": (lambda a: a.transpose().exp(), [rand(3, 4)]),
    "permute": (lambda a: a.permute(2, 0, 1) * 1.5, [rand(2, 3, 4)]),
    "clip": (lambda a: a.clip(-0.5, 0.5), [rand(4, 4)]),
    "flip_time": (lambda a: F.flip(a, 1) * F.flip(a, 1), [rand(2, 5, 3)]),
    "flip_last": (lambda a: F.flip(a, -1).exp(), [rand(4, 3)]),
    "concatenate_last": (lambda a, b: F.concatenate([a, b], axis=-1).exp(),
                         [rand(2, 4, 3), rand(2, 4, 2)]),
    "concatenate_axis0": (lambda a, b, c: F.concatenate([a, b, c]) * 2.0,
                          [rand(1, 3), rand(4, 3), rand(2, 3)]),
    "relu": (lambda a: F.relu(a), [rand(5, 5)]),
    "sigmoid": (lambda a: F.sigmoid(a), [rand(5, 5)]),
    "tanh": (lambda a: F.tanh(a), [rand(5, 5)]),
    "softmax_last": (lambda a: F.softmax(a), [rand(4, 6)]),
    "softmax_axis0": (lambda a: F.softmax(a, axis=0), [rand(4, 6, 2)]),
    "log_softmax": (lambda a: F.log_softmax(a, axis=-1), [rand(3, 7)]),
    "matmul": (lambda a, b: a @ b, [rand(5, 3), rand(3, 4)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [rand(5, 3), rand(3, 4), rand(4)]),
    "linear_3d": (lambda x, w: F.linear(x, w), [rand(2, 5, 3), rand(3, 4)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, LABELS), [rand(5, 3)]),
    "mse_loss": (lambda y, t: F.mse_loss(y, t), [rand(4, 3), rand(4, 3)]),
    "dropout": (lambda a: F.dropout(a, 0.4), [rand(50)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding="same", activation="relu"),
               [rand(2, 5, 6, 3), rand(3, 3, 3, 4), rand(4)]),
    "conv2d_strided": (lambda x, w: F.conv2d(x, w, stride=2, dilation=(1, 2)),
                       [rand(1, 7, 9, 2), rand(2, 2, 2, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2, padding="same"), [rand(2, 5, 5, 3)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, strides=2, padding="same"), [rand(1, 6, 7, 2)]),
    "mlp": (lambda x, w1, b1, w2: F.cross_entropy(F.linear(F.tanh(F.linear(x, w1, b1)), w2),
                                                  LABELS),
            [rand(5, 4), rand(4, 8), rand(8), rand(8, 3)]),
}


def run_case(fn, arrays, device):
    """Value and input gradients of fn on `device`, back on the host."""
    fastnn.manual_seed(1)
    leaves = [fastnn.tensor(a, requires_grad=True).to(device) for a in arrays]
    out = fn(*leaves)
    upstream = np.random.default_rng(2).uniform(-1, 1, out.shape).astype(np.float32)
    grad = fastnn.tensor(upstream).to(device)
    out.backward(grad)
    assert out.device == device and all(t.grad.device == device for t in leaves)
    return out.numpy(), [t.grad.numpy() for t in leaves]


def device_params():
    return [pytest.param("fake", id="fake-cuda"),
            pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(
                not fastnn.cuda.is_available(), reason="needs a CUDA GPU"))]


@pytest.fixture(params=device_params())
def device(request):
    if request.param == "fake":
        request.getfixturevalue("fake_gpu")
    return "cuda"


@pytest.mark.parametrize("name", list(CASES))
def test_op_on_device_matches_cpu(name, device):
    fn, arrays = CASES[name]
    want, want_grads = run_case(fn, arrays, "cpu")
    got, got_grads = run_case(fn, arrays, device)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)


def test_fake_device_work_runs_through_the_cuda_module(fake_gpu):
    x = fastnn.tensor(rand(4, 3), requires_grad=True).to("cuda")
    w = fastnn.tensor(rand(3, 2), requires_grad=True).to("cuda")
    F.cross_entropy(F.linear(F.relu(x), w), np.array([1, 0, 1, 1])).backward()
    assert isinstance(x._data, fastnn.cuda.DeviceArray)
    assert isinstance(w.grad._data, fastnn.cuda.DeviceArray)
    for name in ("relu", "relu_backward", "gemm", "cross_entropy", "cross_entropy_backward"):
        assert fake_gpu.calls.get(name, 0) >= 1, name


def test_mixing_devices_raises(fake_gpu):
    a = fastnn.tensor(rand(3)).to("cuda")
    b = fastnn.tensor(rand(3))
    for op in (lambda: a + b, lambda: b * a, lambda: F.linear(b.reshape(1, 3), a.reshape(3, 1)),
               lambda: a + np.ones(3, np.float32)):
        with pytest.raises(ValueError, match="same device"):
            op()


def test_gpu_backward_needs_gradient_on_the_device(fake_gpu):
    y = fastnn.tensor(rand(3), requires_grad=True).to("cuda") * 2.0
    with pytest.raises(ValueError, match="cpu.*cuda"):
        y.backward(np.ones(3, np.float32))


def test_ops_without_gpu_version_say_so(fake_gpu):
    a = fastnn.tensor(rand(3, 3)).to("cuda")
    with pytest.raises(NotImplementedError, match="getitem.*to\\('cpu'\\)"):
        a[0]


def test_to_moves_values_and_keeps_requires_grad(fake_gpu):
    host = rand(2, 3)
    t = fastnn.tensor(host, requires_grad=True)
    d = t.to("cuda")
    assert d.device == "cuda" and d.requires_grad and d.is_leaf
    back = d.to("cpu")
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), host)
    assert d.to("cuda") is d


def test_sgd_update_in_place_on_device(fake_gpu):
    w = fastnn.tensor(np.ones(4, np.float32), requires_grad=True).to("cuda")
    (w * fastnn.tensor(np.arange(4, dtype=np.float32)).to("cuda")).sum().backward()
    with fastnn.no_grad():
        w.add_(w.grad, alpha=-0.5)
    np.testing.assert_allclose(w.numpy(), 1 - 0.5 * np.arange(4))
    assert fake_gpu.calls["axpy"] == 1


def test_inplace_ops_on_device_write_into_the_tensor(fake_gpu):
    p = fastnn.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True).to("cuda")
    with fastnn.no_grad():
        p -= 0.5
        p.data.mul_(2.0)
        p.detach().add_(1.0)
    np.testing.assert_allclose(p.numpy(), [2.0, 4.0])
    p.detach().copy_(fastnn.tensor(np.array([5.0], np.float32)).to("cuda"))
    np.testing.assert_allclose(p.numpy(), [5.0, 5.0])
    p.detach().zero_()
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0])


def test_to_a_missing_gpu_index(fake_gpu):
    with pytest.raises(ValueError, match="GPU 1"):
        fastnn.tensor(np.ones(2, np.float32)).to("cuda:1")
