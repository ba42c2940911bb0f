"""fastnn.nn: the Module bookkeeping (registration, names, modes, state,
devices), the layers against NumPy references written here in float64,
Keras's initialisers and BatchNormalization semantics, bad input, and a
small network trained end to end.

The Conv2D / pooling forward tests need F.conv2d, F.max_pool2d and
F.avg_pool2d; the argument wiring of Conv2D and the pooling layers is also
checked with stand-ins for those ops, so it is covered without them."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.nn as nn


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ================================================================ NumPy references
def _same_pad(size, k, stride, dilation):
    """Keras's "same": out = ceil(size / stride), the padding split with the
    odd one at the end. Returns (out, pad_before)."""
    out = -(-size // stride)
    span = (k - 1) * dilation + 1
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2


def conv2d_ref(x, w, b=None, stride=1, padding="valid", dilation=1):
    """x (N,H,W,C) NHWC, w (KH,KW,C,F) HWIO -> (N,OH,OW,F), in float64."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    dh, dw = (dilation, dilation) if np.isscalar(dilation) else dilation
    if padding == "same":
        oh, ph = _same_pad(h, kh, sh, dh)
        ow, pw = _same_pad(wd, kw, sw, dw)
    else:
        ph = pw = 0
        oh = (h - (kh - 1) * dh - 1) // sh + 1
        ow = (wd - (kw - 1) * dw - 1) // sw + 1
    padded = np.zeros((n, h + 2 * ph + kh * dh, wd + 2 * pw + kw * dw, c))
    padded[:, ph:ph + h, pw:pw + wd] = x
    out = np.zeros((n, oh, ow, f))
    for i in range(kh):
        for j in range(kw):
            rows = padded[:, i * dh: i * dh + sh * oh: sh, j * dw: j * dw + sw * ow: sw]
            out += rows[:, :oh, :ow] @ w[i, j]
    if b is not None:
        out += np.asarray(b, np.float64)
    return out


def pool2d_ref(x, pool, stride, padding, kind):
    """Max or average pooling of NHWC x; "same" windows cover only real
    elements (Keras: max ignores the padding, the average counts only the
    elements inside the image)."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    ph_, pw_ = pool
    sh, sw = stride
    if padding == "same":
        oh, top = _same_pad(h, ph_, sh, 1)
        ow, left = _same_pad(w, pw_, sw, 1)
    else:
        oh, ow, top, left = (h - ph_) // sh + 1, (w - pw_) // sw + 1, 0, 0
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - top, j * sw - left
            win = x[:, max(r0, 0):min(r0 + ph_, h), max(c0, 0):min(c0 + pw_, w)]
            out[:, i, j] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return out


def batchnorm_ref(x, gamma, beta, axis, eps):
    """Training-mode forward in float64: (y, cache) with the biased variance."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    mu = x.mean(axis=red, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=red, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    y = xhat * np.reshape(gamma, shape) + np.reshape(beta, shape)
    return y, (xhat, inv, np.reshape(gamma, shape).astype(np.float64), red, mu, var)


def batchnorm_backward_ref(dy, cache):
    """(dx, dgamma, dbeta) of batchnorm_ref, the textbook formula."""
    xhat, inv, gamma, red, _, _ = cache
    dy = np.asarray(dy, np.float64)
    m = math.prod(xhat.shape[i] for i in red)
    dbeta = dy.sum(axis=red)
    dgamma = (dy * xhat).sum(axis=red)
    dxhat = dy * gamma
    dx = inv / m * (m * dxhat - dxhat.sum(axis=red, keepdims=True)
                    - xhat * (dxhat * xhat).sum(axis=red, keepdims=True))
    return dx, dgamma, dbeta


NP_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "softmax": lambda z: np.exp(z - z.max(-1, keepdims=True))
    / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True),
    "linear": lambda z: z,
    None: lambda z: z,
}


def numeric_grad(f, arr, h=1e-6):
    """Central differences of the scalar f() with respect to arr (changed in
    place and restored)."""
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + h
        up = f()
        arr[i] = old - h
        down = f()
        arr[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def mlp(seed=0, n_in=4):
    fastnn.manual_seed(seed)
    m = nn.Sequential([nn.Dense(16, activation="relu"), nn.BatchNormalization(),
                       nn.Dropout(0.3), nn.Dense(3)])
    m(rand(5, n_in, seed=seed + 100))
    return m


# ================================================================ Module bookkeeping
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = fastnn.tensor(np.ones(3, np.float32), requires_grad=True)
        self.body = nn.Sequential([nn.Dense(4), nn.Dense(3)])
        self.head = nn.Dense(2)
        self.tied = self.head                                # the same module twice
        self.const = fastnn.tensor(np.zeros(3, np.float32))  # no grad: not a parameter
        self.note = "plain attribute"

    def forward(self, x):
        return self.tied(self.head_input(x))

    def head_input(self, x):
        return self.body(x) * self.scale


def test_parameters_are_registered_by_assignment_in_order_without_duplicates():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale"]  # layers not built yet
    out = net(rand(2, 5))
    assert out.shape == (2, 2)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.kernel", "body.0.bias", "body.1.kernel", "body.1.bias",
                     "head.kernel", "head.bias"]
    params = net.parameters()
    assert [id(p) for p in params] == [id(t) for _, t in net.named_parameters()]
    assert len({id(p) for p in params}) == len(params)
    assert params[1] is net.body[0].kernel and params[-1] is net.head.bias
    assert all(p.requires_grad and p.is_leaf for p in params)
    assert net.note == "plain attribute" and net.const.shape == (3,)
    assert "const" not in dict(net.named_parameters()) and "const" not in net.state_dict()


def test_a_layer_names_its_own_weights_kernel_and_bias():
    d = nn.Dense(3)
    d(rand(2, 4))
    assert [n for n, _ in d.named_parameters()] == ["kernel", "bias"]
    assert d.parameters()[0] is d.kernel and d.parameters()[1] is d.bias


def test_a_tensor_shared_by_two_modules_is_listed_once():
    a, b = nn.Dense(3), nn.Dense(3)
    model = nn.Sequential([a, b])
    model(rand(2, 3))
    b.kernel = a.kernel
    assert [n for n, _ in model.named_parameters()] == ["0.kernel", "0.bias", "1.bias"]
    shared = nn.Sequential([a, a])  # a layer used twice
    assert len(shared.parameters()) == 2


def test_reassigning_or_deleting_attributes_updates_the_registry():
    net = Net()
    net(rand(2, 5))
    net.scale = None                                   # no longer a parameter
    assert "scale" not in dict(net.named_parameters()) and net.scale is None
    non_leaf = fastnn.tensor(np.ones(2, np.float32), requires_grad=True) * 2.0
    net.cached = non_leaf                              # an op's output: not a parameter
    assert net.cached is non_leaf and "cached" not in dict(net.named_parameters())
    del net.head
    assert not any(n.startswith("head.") for n, _ in net.named_parameters())
    assert "tied.kernel" in dict(net.named_parameters())  # still reachable via the alias
    with pytest.raises(AttributeError, match="no attribute 'head'"):
        net.head


def test_assigning_before_super_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.layer = nn.Dense(2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()


def test_train_and_eval_reach_every_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.body[1].training


def test_zero_grad_clears_every_gradient():
    model = mlp()
    F.cross_entropy(model(rand(5, 4)), np.array([0, 1, 2, 0, 1])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_repr_lists_the_layers_and_their_arguments():
    model = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dropout(0.25), nn.Dense(2)])
    text = repr(model)
    assert text.startswith("Sequential(")
    assert "(0): Dense(units=8, activation='relu')" in text
    assert "(1): Dropout(rate=0.25)" in text and "(2): Dense(units=2)" in text


def test_sequential_container_add_index_len_iter():
    a, b, c = nn.Dense(4), nn.Activation("relu"), nn.Dense(2)
    model = nn.Sequential([a, b])
    assert model.add(c) is model
    assert len(model) == 3 and model[0] is a and model[-1] is c and list(model) == [a, b, c]
    assert list(model[1:]) == [b, c]
    assert model(rand(3, 5)).shape == (3, 2)
    with pytest.raises(TypeError, match="Module"):
        model.add("dense")
    with pytest.raises(IndexError):
        model[3]
    with pytest.raises(TypeError, match="list of layers"):
        nn.Sequential(nn.Dense(2))


def test_module_list_registers_its_modules():
    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Dense(3), nn.Dense(3)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    t = Tower()
    t(rand(2, 3))
    assert len(t.blocks) == 2
    assert [n for n, _ in t.named_parameters()] == [
        "blocks.0.kernel", "blocks.0.bias", "blocks.1.kernel", "blocks.1.bias"]


# ================================================================ state_dict
def test_state_dict_holds_copies_of_weights_and_moving_statistics():
    model = mlp()
    sd = model.state_dict()
    assert list(sd) == ["0.kernel", "0.bias", "1.gamma", "1.beta", "1.moving_mean",
                        "1.moving_variance", "3.kernel", "3.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["0.kernel"].shape == (4, 16) and sd["1.moving_variance"].shape == (16,)
    np.testing.assert_array_equal(sd["1.moving_mean"], model[1].moving_mean.numpy())
    sd["0.kernel"][...] = 123.0
    assert not np.any(model[0].kernel.numpy() == 123.0)


def test_state_dict_round_trip_gives_identical_outputs():
    source = mlp(seed=1)
    for i in range(3):  # move the BatchNormalization statistics away from their start
        source(rand(5, 4, seed=10 + i) * 3 + 1)
    target = mlp(seed=2)
    x = rand(7, 4, seed=3)
    source.eval(), target.eval()
    assert not np.array_equal(source(x).numpy(), target(x).numpy())
    kernel = target[0].kernel
    assert target.load_state_dict(source.state_dict()) is target
    assert target[0].kernel is kernel  # copied in place: optimizers keep working
    np.testing.assert_array_equal(target(x).numpy(), source(x).numpy())
    for k, v in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[k], v)
    source.train(), target.train()
    fastnn.manual_seed(5)
    want = source(x).numpy()
    fastnn.manual_seed(5)
    np.testing.assert_array_equal(target(x).numpy(), want)  # same dropout mask, same BN


def test_load_state_dict_rejects_wrong_shapes_and_names_and_changes_nothing():
    model = mlp()
    before = model.state_dict()
    bad = dict(before)
    bad["0.kernel"] = np.zeros((5, 16), np.float32)
    bad["0.bias"] = np.ones(16, np.float32)  # valid, but must not be applied either
    with pytest.raises(ValueError, match=r"'0\.kernel'.*\(5, 16\).*expected \(4, 16\)"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])

    missing = {k: v for k, v in before.items() if k != "1.moving_mean"}
    with pytest.raises(ValueError, match=r"missing \['1\.moving_mean'\]"):
        model.load_state_dict(missing)
    extra = dict(before, **{"4.kernel": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"unexpected \['4\.kernel'\]"):
        model.load_state_dict(extra)
    with pytest.raises(ValueError, match="call it once"):
        nn.Sequential([nn.Dense(16)]).load_state_dict({"0.kernel": before["0.kernel"]})
    with pytest.raises(TypeError, match="state_dict"):
        model.load_state_dict([("0.kernel", before["0.kernel"])])


# ================================================================ initialisers
def test_glorot_uniform_dense_kernel_and_zero_bias():
    fastnn.manual_seed(0)
    layer = nn.Dense(400)
    layer(rand(1, 600))
    k = layer.kernel.numpy()
    assert k.shape == (600, 400) and k.dtype == np.float32
    limit = math.sqrt(6 / (600 + 400))
    # 240,000 draws: the sample variance is within 0.4 % (1 sd) of limit**2 / 3
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.99 * limit
    assert abs(k.var() / (limit ** 2 / 3) - 1) < 0.03
    assert abs(k.mean()) < 0.01 * limit
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(400, np.float32))


def test_glorot_uniform_conv_kernel_uses_the_receptive_field():
    fastnn.manual_seed(0)
    layer = nn.Conv2D(32, (3, 3), input_shape=(8, 8, 16))  # built at construction
    k = layer.kernel.numpy()
    assert k.shape == (3, 3, 16, 32) and k.dtype == np.float32
    limit = math.sqrt(6 / (9 * 16 + 9 * 32))
    # 4608 draws: the sample variance is within 1.3 % (1 sd) of limit**2 / 3; a
    # fan_out without the receptive field would give 2.5x that variance
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.98 * limit
    assert abs(k.var() / (limit ** 2 / 3) - 1) < 0.1
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(32, np.float32))


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed):
        fastnn.manual_seed(seed)
        m = nn.Sequential([nn.Dense(5), nn.Dense(3)])
        m(rand(2, 4))
        return [p.numpy().copy() for p in m.parameters()]

    a, b, c = weights(7), weights(7), weights(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])


# ================================================================ Dense
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "linear", None])
def test_dense_matches_numpy(activation):
    fastnn.manual_seed(0)
    layer = nn.Dense(6, activation=activation)
    x = rand(5, 4)
    y = layer(x)
    assert y.shape == (5, 6) and y.dtype == np.float32
    assert layer.kernel.shape == (4, 6) and layer.bias.shape == (6,)
    with fastnn.no_grad():
        layer.bias.copy_(rand(6, seed=1))
    y = layer(fastnn.tensor(x))
    want = NP_ACTIVATIONS[activation](x.astype(np.float64) @ layer.kernel.numpy()
                                      + layer.bias.numpy())
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)


def test_dense_keeps_leading_axes_and_can_drop_the_bias():
    layer = nn.Dense(3, use_bias=False)
    x = rand(2, 5, 4)
    y = layer(x)
    assert y.shape == (2, 5, 3) and layer.bias is None
    assert [n for n, _ in layer.named_parameters()] == ["kernel"]
    np.testing.assert_allclose(y.numpy(), x @ layer.kernel.numpy(), rtol=1e-5, atol=1e-6)


def test_dense_input_shape_builds_at_construction():
    layer = nn.Dense(3, input_shape=(4,))
    assert layer.kernel.shape == (4, 3)
    with pytest.raises(ValueError, match=r"Dense.*\(None, 4\).*\(2, 5\)"):
        layer(rand(2, 5))


def test_input_shape_must_fix_the_sizes_the_weights_depend_on():
    with pytest.raises(ValueError, match=r"Dense.*'kernel'.*\(None, 3\)"):
        nn.Dense(3, input_shape=(None,))
    assert nn.Dense(3, input_shape=(None, 4)).kernel.shape == (4, 3)


def test_dense_rejects_a_changed_feature_size():
    layer = nn.Dense(3)
    layer(rand(2, 4))
    with pytest.raises(ValueError, match=r"Dense.*\(\.\.\., 4\).*\(2, 7\)"):
        layer(rand(2, 7))


def test_dense_gradients_match_numpy():
    layer = nn.Dense(3)
    x = fastnn.tensor(rand(4, 5), requires_grad=True)
    g = rand(4, 3, seed=2)
    layer(x).backward(g)
    np.testing.assert_allclose(layer.kernel.grad.numpy(), x.numpy().T @ g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad.numpy(), g.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), g @ layer.kernel.numpy().T, rtol=1e-5, atol=1e-6)


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="units"):
        nn.Dense(0)
    with pytest.raises(ValueError, match="rate"):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match="pool_size"):
        nn.MaxPooling2D(0)
    with pytest.raises(TypeError, match="dtype"):
        nn.Dense(3, dtype="int32")


# ================================================================ activations
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_layer_by_name(name):
    x = rand(4, 7) * 3
    y = nn.Activation(name)(x)
    np.testing.assert_allclose(y.numpy(), NP_ACTIVATIONS[name](x.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


def test_activation_accepts_a_callable_and_rejects_unknown_names():
    x = rand(3, 2)
    np.testing.assert_allclose(nn.Activation(lambda t: t * 2.0)(x).numpy(), 2 * x)
    for make in (lambda: nn.Activation("swishy"), lambda: nn.Dense(3, activation="swishy")):
        with pytest.raises(ValueError, match="swishy") as info:
            make()
        for valid in ("relu", "sigmoid", "tanh", "softmax", "linear"):
            assert valid in str(info.value)


# ================================================================ Flatten, Dropout
def test_flatten_shapes_and_gradient():
    x = fastnn.tensor(rand(2, 3, 4, 5), requires_grad=True)
    y = nn.Flatten()(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y.numpy(), x.numpy().reshape(2, 60))
    y.backward(np.ones((2, 60), np.float32))
    assert x.grad.shape == (2, 3, 4, 5)
    assert nn.Flatten()(rand(7)).shape == (7, 1)
    assert nn.Flatten()(rand(0, 3, 2)).shape == (0, 6)


def test_dropout_drops_while_training_and_is_the_identity_in_eval():
    layer = nn.Dropout(0.5)
    x = np.ones((4000,), np.float32)
    fastnn.manual_seed(0)
    y = layer(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.45 < (y == 0).mean() < 0.55  # 4000 draws: sd 0.008
    model = nn.Sequential([layer])
    model.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x)
    model.train()
    assert (layer(x).numpy() == 0).any()


# ================================================================ BatchNormalization
def test_batchnorm_training_forward_matches_numpy_nhwc():
    layer = nn.BatchNormalization()
    x = rand(4, 3, 5, 6) * 2 + 1
    y = layer(x)
    assert layer.gamma.shape == layer.beta.shape == layer.moving_mean.shape == (6,)
    np.testing.assert_array_equal(layer.gamma.numpy(), np.ones(6, np.float32))
    np.testing.assert_array_equal(layer.beta.numpy(), np.zeros(6, np.float32))
    want, _ = batchnorm_ref(x, np.ones(6), np.zeros(6), -1, 1e-3)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-5)
    # with non-trivial gamma and beta, and another axis
    layer = nn.BatchNormalization(axis=1, epsilon=0.01)
    x = rand(8, 3, 5, seed=1)
    layer(x)
    gamma, beta = rand(3, seed=2), rand(3, seed=3)
    with fastnn.no_grad():
        layer.gamma.copy_(gamma)
        layer.beta.copy_(beta)
    want, _ = batchnorm_ref(x, gamma, beta, 1, 0.01)
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-4, atol=1e-5)


def test_batchnorm_moving_statistics_follow_keras():
    momentum = 0.9
    layer = nn.BatchNormalization(momentum=momentum)
    mm, mv = np.zeros(3), np.ones(3)
    for step in range(4):
        x = rand(8, 3, seed=step) * (step + 1) + step
        layer(x)
        mean = x.astype(np.float64).mean(0)
        var = x.astype(np.float64).var(0)  # biased, as Keras 3 uses for the moving average
        mm = mm * momentum + mean * (1 - momentum)
        mv = mv * momentum + var * (1 - momentum)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), mv, rtol=1e-5, atol=1e-6)
    assert layer.moving_mean.dtype == np.float32 and not layer.moving_mean.requires_grad
    assert [n for n, _ in layer.named_parameters()] == ["gamma", "beta"]
    assert list(layer.state_dict()) == ["gamma", "beta", "moving_mean", "moving_variance"]


def test_batchnorm_inference_uses_moving_statistics_and_leaves_them():
    layer = nn.BatchNormalization(epsilon=1e-3)
    for step in range(3):
        layer(rand(16, 4, seed=step) * 2 + 3)
    gamma, beta = rand(4, seed=8), rand(4, seed=9)
    with fastnn.no_grad():
        layer.gamma.copy_(gamma)
        layer.beta.copy_(beta)
    mm, mv = layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()
    layer.eval()
    x = rand(5, 4, seed=7)
    y = layer(x)
    want = (x - mm) / np.sqrt(mv.astype(np.float64) + 1e-3) * gamma + beta
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mm)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), mv)
    # the training-mode output differs (batch statistics)
    layer.train()
    assert not np.allclose(layer(x).numpy(), y.numpy(), atol=1e-3)


def test_batchnorm_gradient_float64_central_differences():
    x = rand(6, 3, seed=4, dtype=np.float64) * 2 + 0.5
    r = rand(6, 3, seed=5, dtype=np.float64)  # loss = sum(y * r)
    layer = nn.BatchNormalization(epsilon=1e-3, dtype="float64")
    layer(x)
    gamma = rand(3, seed=6, dtype=np.float64) + 1.5
    beta = rand(3, seed=7, dtype=np.float64)
    with fastnn.no_grad():
        layer.gamma.copy_(gamma)
        layer.beta.copy_(beta)
    xt = fastnn.tensor(x, requires_grad=True, dtype="float64")
    (layer(xt) * fastnn.tensor(r, dtype="float64")).sum().backward()
    assert xt.grad.dtype == np.float64 and layer.gamma.grad.dtype == np.float64

    def loss():
        with fastnn.no_grad():
            return float((layer(fastnn.tensor(x, dtype="float64")).numpy() * r).sum())

    np.testing.assert_allclose(xt.grad.numpy(), numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    g_gamma = layer.gamma.numpy()  # the tensor's memory: the finite differences move it
    np.testing.assert_allclose(layer.gamma.grad.numpy(), numeric_grad(loss, g_gamma),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.beta.grad.numpy(), numeric_grad(loss, layer.beta.numpy()),
                               rtol=1e-6, atol=1e-8)
    # and the formula of the NumPy reference agrees
    _, cache = batchnorm_ref(x, gamma, beta, -1, 1e-3)
    dx, dg, db = batchnorm_backward_ref(r, cache)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.gamma.grad.numpy(), dg, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.beta.grad.numpy(), db, rtol=1e-9, atol=1e-12)


def test_batchnorm_float32_gradient_matches_the_reference_formula():
    x = rand(4, 3, 3, 5, seed=11) * 3 - 1
    dy = rand(4, 3, 3, 5, seed=12)
    layer = nn.BatchNormalization()
    layer(x)
    gamma, beta = rand(5, seed=13), rand(5, seed=14)
    with fastnn.no_grad():
        layer.gamma.copy_(gamma)
        layer.beta.copy_(beta)
    xt = fastnn.tensor(x, requires_grad=True)
    layer(xt).backward(dy)
    _, cache = batchnorm_ref(x, gamma, beta, -1, 1e-3)
    dx, dg, db = batchnorm_backward_ref(dy, cache)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(layer.gamma.grad.numpy(), dg, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.beta.grad.numpy(), db, rtol=1e-5, atol=1e-5)


def test_batchnorm_without_center_or_scale_has_no_gamma_or_beta():
    layer = nn.BatchNormalization(center=False, scale=False)
    x = rand(6, 2)
    y = layer(x)
    assert layer.parameters() == [] and layer.gamma is None and layer.beta is None
    assert list(layer.state_dict()) == ["moving_mean", "moving_variance"]
    want, _ = batchnorm_ref(x, np.ones(2), np.zeros(2), -1, 1e-3)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-5)


def test_batchnorm_rejects_changed_features_and_bad_axes():
    layer = nn.BatchNormalization()
    layer(rand(4, 3))
    with pytest.raises(ValueError, match=r"BatchNormalization.*3 features.*\(4, 5\)"):
        layer(rand(4, 5))
    with pytest.raises(ValueError, match=r"BatchNormalization.*axis 3.*\(4, 3\)"):
        nn.BatchNormalization(axis=3)(rand(4, 3))


# ================================================================ regularization
def test_regularization_losses_call_the_regularizer_on_the_kernel():
    model = nn.Sequential([nn.Dense(4, kernel_regularizer=lambda k: (k * k).sum() * 0.01),
                           nn.Dense(2)])
    assert model.regularization_losses() == []  # nothing built yet
    assert model[0].kernel_regularizer is not None and model[1].kernel_regularizer is None
    model(rand(3, 5))
    losses = model.regularization_losses()
    assert len(losses) == 1 and losses[0].shape == ()
    k = model[0].kernel.numpy()
    np.testing.assert_allclose(losses[0].item(), 0.01 * (k.astype(np.float64) ** 2).sum(),
                               rtol=1e-5)
    losses[0].backward()
    np.testing.assert_allclose(model[0].kernel.grad.numpy(), 0.02 * k, rtol=1e-5, atol=1e-7)
    assert model[1].kernel.grad is None


# ================================================================ bad input ranks
@pytest.mark.parametrize("layer", [nn.Conv2D(2, 3), nn.MaxPooling2D(), nn.AveragePooling2D()],
                         ids=["Conv2D", "MaxPooling2D", "AveragePooling2D"])
def test_image_layers_reject_inputs_that_are_not_4d(layer):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name}.*4-D.*\(2, 8, 3\)"):
        layer(rand(2, 8, 3))
    with pytest.raises(ValueError, match=rf"{name}.*4-D.*\(1, 2, 8, 8, 3\)"):
        layer(rand(1, 2, 8, 8, 3))


def test_conv2d_rejects_a_changed_channel_count():
    layer = nn.Conv2D(4, 3, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"Conv2D.*\(None, None, None, 3\).*\(1, 8, 8, 5\)"):
        layer(rand(1, 8, 8, 5))


# ================================================================ Conv2D / pooling wiring
def test_conv2d_passes_its_arguments_to_f_conv2d(monkeypatch):
    calls = []

    def fake_conv2d(x, w, b=None, stride=1, padding="valid", dilation=1, activation=None):
        calls.append(dict(w=w, b=b, stride=stride, padding=padding, dilation=dilation,
                          activation=activation))
        return fastnn.tensor(np.full((1, 2, 2, w.shape[3]), -1.0, np.float32))

    monkeypatch.setattr(F, "conv2d", fake_conv2d, raising=False)
    layer = nn.Conv2D(5, (3, 2), strides=(2, 1), padding="same", dilation_rate=2,
                      activation="relu")
    layer(rand(1, 6, 6, 4))
    c = calls[-1]
    assert c["w"] is layer.kernel and c["b"] is layer.bias and layer.kernel.shape == (3, 2, 4, 5)
    assert c["stride"] in ((2, 1), [2, 1]) and c["padding"] == "same"
    assert c["dilation"] in (2, (2, 2)) and c["activation"] == "relu"
    y = nn.Conv2D(5, 3, activation="sigmoid", use_bias=False)(rand(1, 6, 6, 4))
    c = calls[-1]
    assert c["activation"] is None and c["b"] is None and c["stride"] in (1, (1, 1))
    np.testing.assert_allclose(y.numpy(), 1 / (1 + np.exp(1.0)), rtol=1e-6)  # applied after


@pytest.mark.parametrize("cls,op", [(nn.MaxPooling2D, "max_pool2d"),
                                    (nn.AveragePooling2D, "avg_pool2d")])
def test_pooling_passes_its_arguments_to_f(monkeypatch, cls, op):
    calls = []

    def fake(x, pool_size=2, strides=None, padding="valid"):
        calls.append((pool_size, strides, padding))
        return x

    monkeypatch.setattr(F, op, fake, raising=False)
    cls()(rand(1, 4, 4, 2))
    cls(pool_size=3, strides=(1, 2), padding="same")(rand(1, 4, 4, 2))
    assert calls[0][0] in (2, (2, 2)) and calls[0][1] in (2, (2, 2)) and calls[0][2] == "valid"
    assert calls[1][0] in (3, (3, 3)) and tuple(np.atleast_1d(calls[1][1])) == (1, 2)
    assert calls[1][2] == "same"


# ================================================================ Conv2D / pooling (need F)
@pytest.mark.parametrize("kwargs,shape", [
    (dict(kernel_size=3), (2, 7, 6, 3)),
    (dict(kernel_size=(3, 2), strides=2, padding="same"), (2, 7, 6, 3)),
    (dict(kernel_size=3, dilation_rate=2, padding="same"), (1, 9, 8, 2)),
    (dict(kernel_size=1, strides=(2, 1)), (1, 5, 4, 3)),
], ids=["valid", "same-stride2", "dilated-same", "1x1-stride21"])
def test_conv2d_matches_numpy(kwargs, shape):
    fastnn.manual_seed(0)
    layer = nn.Conv2D(4, **kwargs)
    x = rand(*shape)
    layer(x)
    with fastnn.no_grad():
        layer.bias.copy_(rand(4, seed=1))
    y = layer(x)
    want = conv2d_ref(x, layer.kernel.numpy(), layer.bias.numpy(),
                      kwargs.get("strides", 1), kwargs.get("padding", "valid"),
                      kwargs.get("dilation_rate", 1))
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-5)


def test_conv2d_relu_and_training_step():
    fastnn.manual_seed(0)
    model = nn.Sequential([nn.Conv2D(3, 3, padding="same", activation="relu"),
                           nn.MaxPooling2D(), nn.Flatten(), nn.Dense(2)])
    x = rand(2, 6, 6, 2)
    out = model(x)
    assert out.shape == (2, 2)
    conv = model[0]
    want = np.maximum(conv2d_ref(x, conv.kernel.numpy(), conv.bias.numpy(), padding="same"), 0)
    np.testing.assert_allclose(model[:1](x).numpy(), want, rtol=1e-4, atol=1e-5)
    F.cross_entropy(out, np.array([0, 1])).backward()
    assert conv.kernel.grad.shape == (3, 3, 2, 3) and conv.bias.grad.shape == (3,)
    assert np.abs(conv.kernel.grad.numpy()).sum() > 0


@pytest.mark.parametrize("cls,kind", [(nn.MaxPooling2D, "max"), (nn.AveragePooling2D, "avg")])
@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=(2, 3), strides=1)],
                         ids=["2x2", "3x3-s2-same", "2x3-s1"])
def test_pooling_matches_numpy(cls, kind, kwargs):
    x = rand(2, 7, 6, 3)
    y = cls(**kwargs)(x)
    pool = kwargs.get("pool_size", 2)
    pool = pool if isinstance(pool, tuple) else (pool, pool)
    stride = kwargs.get("strides") or pool
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    want = pool2d_ref(x, pool, stride, kwargs.get("padding", "valid"), kind)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-6)


# ================================================================ devices
def test_to_moves_parameters_and_buffers_keeping_requires_grad(fake_gpu):
    model = mlp()
    cpu_state = model.state_dict()
    old = model.parameters()
    assert model.to("cuda") is model
    params = model.parameters()
    assert len(params) == len(old) and all(p is not q for p, q in zip(params, old))
    assert all(p.device == "cuda" and p.requires_grad and p.is_leaf for p in params)
    assert params[0] is model[0].kernel
    assert model[1].moving_mean.device == "cuda" and not model[1].moving_mean.requires_grad
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, cpu_state[k])
    model.load_state_dict(cpu_state)  # host arrays into device tensors
    assert model[0].kernel.device == "cuda"
    model.eval()
    y = model(fastnn.tensor(rand(3, 4)).to("cuda"))
    assert y.device == "cuda" and y.shape == (3, 3)
    fresh = nn.Dense(2).to("cuda")  # built later, on the device it was moved to
    fresh(fastnn.tensor(rand(3, 4)).to("cuda"))
    assert fresh.kernel.device == "cuda" and fresh.bias.device == "cuda"
    model.to("cpu")
    assert all(p.device == "cpu" and p.requires_grad for p in model.parameters())
    np.testing.assert_array_equal(model[0].kernel.numpy(), cpu_state["0.kernel"])


# ================================================================ end to end
def test_two_layer_network_learns_a_nonlinear_problem_with_sgd():
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of the signs

    x_train, y_train = data(512)
    x_test, y_test = data(512)
    fastnn.manual_seed(0)
    model = nn.Sequential([nn.Dense(32, activation="tanh"), nn.Dense(2)])
    model(x_train[:1])
    for _ in range(400):
        loss = F.cross_entropy(model(x_train), y_train)
        model.zero_grad()
        loss.backward()
        with fastnn.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    model.eval()
    accuracy = (model(x_test).numpy().argmax(1) == y_test).mean()
    assert loss.item() < 0.2
    assert accuracy > 0.93


def test_to_checks_the_device_even_before_the_weights_exist():
    with pytest.raises(ValueError, match="device"):
        nn.Dense(2).to("tpu")
    if not fastnn.cuda.is_available():
        with pytest.raises(RuntimeError, match="Module.to"):
            nn.Dense(2).to("cuda")
    layer = nn.Dense(2).to("CPU")
    layer(rand(1, 3))
    assert layer.kernel.device == "cpu"


def test_batchnorm_empty_batch_keeps_moving_statistics():
    bn = nn.BatchNormalization()
    bn(np.ones((4, 3), np.float32))
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    out = bn(np.ones((0, 3), np.float32))
    assert out.shape == (0, 3)
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_training_argument_sets_the_mode_for_one_call():
    fastnn.manual_seed(0)
    model = nn.Sequential([nn.Dense(4), nn.Dropout(0.5)])
    x = np.ones((2, 3), np.float32)
    out = model(x, training=False).numpy()
    np.testing.assert_array_equal(out, model(x, training=False).numpy())  # dropout off
    assert model.training and model[1].training  # the previous mode is back
    model.eval()
    model(x, training=True)
    assert not model.training and not model[1].training
