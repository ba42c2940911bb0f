"""The probability losses (F.binary_cross_entropy, F.categorical_crossentropy,
F.sparse_categorical_crossentropy), fastnn.losses (Keras's names) and
fastnn.regularizers.

Values and gradients against the float64 references of reference/losses.py
(Keras's definitions: rows renormalised, probabilities clipped to
[1e-7, 1 - 1e-7]) in float32 and float64, central differences in float64,
probabilities of exactly 0 and 1, extreme logits, and the outputs of
F.softmax / F.sigmoid, which are scored through their logits (as Keras's
TensorFlow backend does) and so match the from_logits losses bit for bit.
"""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from fastnn import losses, nn, regularizers
from reference import losses as ref
from reference import ops as ops_ref
from reference.checks import assert_within
from test_autograd_ops import check_grad

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
TINY32 = float(np.finfo(np.float32).tiny)
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def bounds(dtype):
    """Keras's clip bounds as that dtype rounds them."""
    return float(dtype(1e-7)), float(dtype(1.0 - 1e-7))


def tensor(a, dtype=np.float32, requires_grad=True):
    return fastnn.tensor(np.array(a, dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def probabilities(shape, rng, dtype=np.float64):
    z = 2 * rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(dtype)


def run(fn, pred, target, dtype, dout=1.7):
    """fn(pred tensor, target tensor or labels) -> (value, grads of both)."""
    p = tensor(pred, dtype)
    t = tensor(target, dtype) if np.asarray(target).dtype.kind == "f" else target
    out = fn(p, t)
    assert out.shape == () and out.dtype == dtype
    out.backward(np.array(dout, dtype))
    return out.item(), p.grad.numpy(), (t.grad.numpy() if isinstance(t, fastnn.Tensor) else None)


# ================================================================ binary cross-entropy

BINARY_SHAPES = [(1, 1), (7, 1), (5, 3), (4, 3, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BINARY_SHAPES, ids=str)
def test_binary_cross_entropy_matches_keras(dtype, shape):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, shape).astype(dtype)
    t = rng.uniform(0, 1, shape).astype(dtype)  # soft targets too
    lo, hi = bounds(dtype)
    eps = EPS[dtype]
    value, dp, dt = run(F.binary_cross_entropy, p, t, dtype)
    c = np.clip(p.astype(np.float64), lo, hi)
    terms = np.abs(t * np.log(c)) + np.abs((1 - t) * np.log(1 - c))
    assert abs(value - ref.bce_forward(p, t, lo, hi)) <= 16 * eps * terms.mean()
    want_p, want_t = ref.bce_backward(1.7, p, t, lo, hi)
    scale = 1.7 / p.size
    assert_within(dp, want_p, 16 * eps * scale * (np.abs(t / c) + np.abs((1 - t) / (1 - c))),
                  "d/dp", dtype)
    assert_within(dt, want_t, 16 * eps * scale * (np.abs(np.log(c)) + np.abs(np.log(1 - c))),
                  "d/dt", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_of_probabilities_0_and_1_is_finite(dtype):
    p = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype)
    t = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]], dtype)
    lo, hi = bounds(dtype)
    value, dp, dt = run(F.binary_cross_entropy, p, t, dtype, dout=1.0)
    assert np.isfinite(value) and np.isfinite(dp).all() and np.isfinite(dt).all()
    want = (-np.log(1 - lo) - np.log(hi) - np.log(lo) - np.log(1 - hi) - np.log(0.5)) / 5
    assert abs(value - want) <= 8 * EPS[dtype] * want
    # clipped probabilities get no gradient (Keras's clip); 0.5 gets -t/p / n
    np.testing.assert_allclose(dp, [[0, 0, 0, 0, -2.0 / 5]], rtol=4 * EPS[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BINARY_SHAPES, ids=str)
def test_binary_cross_entropy_from_logits(dtype, shape):
    rng = np.random.default_rng(1)
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    t = rng.uniform(0, 1, shape).astype(dtype)
    eps = EPS[dtype]
    value, dx, dt = run(lambda a, b: F.binary_cross_entropy(a, b, from_logits=True), x, t, dtype)
    terms = np.abs(x) * (1 + np.abs(t)) + 1
    assert abs(value - ref.bce_logits_forward(x, t)) <= 16 * eps * terms.mean()
    want_x, want_t = ref.bce_logits_backward(1.7, x, t)
    scale = 1.7 / x.size
    assert_within(dx, want_x, 16 * eps * scale * (1 + np.abs(t)) + TINY32, "d/dx", dtype)
    assert_within(dt, want_t, 16 * eps * scale * np.abs(x), "d/dt", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_of_extreme_logits_is_exact(dtype):
    x = np.array([[1e4, -1e4, 0.0, 30.0, -30.0, 88.0]], dtype)
    t = np.array([[0.0, 0.0, 1.0, 1.0, 1.0, 0.5]], dtype)
    value, dx, _ = run(lambda a, b: F.binary_cross_entropy(a, b, from_logits=True), x, t, dtype,
                       dout=1.0)
    want = ref.bce_logits_forward(x, t)
    assert abs(value - want) <= 8 * EPS[dtype] * want
    # at x = 0 the gradient is sigmoid(0) - t = -0.5 (not the 0 of |x|'s kink)
    assert_within(dx, ref.bce_logits_backward(1.0, x, t)[0], 8 * EPS[dtype] / 6, "d/dx", dtype)


def test_binary_cross_entropy_of_a_sigmoid_output_is_taken_from_its_logits():
    rng = np.random.default_rng(2)
    x = np.concatenate([40 * rng.standard_normal((6, 3)), np.zeros((1, 3))]).astype(np.float32)
    t = rng.integers(0, 2, (7, 3)).astype(np.float32)
    a, b = tensor(x), tensor(x)
    fused = F.binary_cross_entropy(F.sigmoid(a), t)
    direct = F.binary_cross_entropy(b, t, from_logits=True)
    assert fused.item() == direct.item()
    fused.backward()
    direct.backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    # a copy of the probabilities is not recognised: Keras's clipped form
    p = F.sigmoid(tensor(x, requires_grad=False)).numpy().copy()
    lo, hi = bounds(np.float32)
    clipped = F.binary_cross_entropy(p, t).item()
    assert abs(clipped - ref.bce_forward(p, t, lo, hi)) <= 1e-5 * clipped
    assert clipped < direct.item()  # the clip caps the loss of the saturated ones


def test_binary_cross_entropy_float64_gradients_match_central_differences():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, (4, 3))
    t = rng.uniform(0, 1, (4, 3))
    check_grad(F.binary_cross_entropy, tensor(p, np.float64), tensor(t, np.float64))
    x = 3 * rng.standard_normal((4, 3))
    check_grad(lambda a, b: F.binary_cross_entropy(a, b, from_logits=True),
               tensor(x, np.float64), tensor(t, np.float64))


# ================================================================ categorical cross-entropy

CATEGORICAL_SHAPES = [(1, 1), (1, 7), (5, 3), (6, 10), (2, 3, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CATEGORICAL_SHAPES, ids=str)
def test_categorical_crossentropy_matches_keras(dtype, shape):
    rng = np.random.default_rng(4)
    p = probabilities(shape, rng, dtype) * dtype(1.3)  # Keras renormalises the rows
    t = probabilities(shape, rng, dtype)  # soft targets
    lo, hi = bounds(dtype)
    eps = EPS[dtype]
    value, dp, dt = run(F.categorical_crossentropy, p, t, dtype)
    p2, t2 = p.reshape(-1, shape[-1]).astype(np.float64), t.reshape(-1, shape[-1])
    s = p2.sum(axis=1, keepdims=True)
    c = np.clip(p2 / s, lo, hi)
    assert abs(value - ref.categorical_forward(p, t, lo, hi)) <= \
        16 * eps * np.abs(t2 * np.log(c)).sum(axis=1).mean() + TINY32
    want_p, want_t = ref.categorical_backward(1.7, p, t, lo, hi)
    a = 1.7 * np.abs(t2) / c / len(p2)  # the size of d/dq
    tol_p = 16 * eps * (a / s + (a * p2).sum(axis=1, keepdims=True) / s ** 2)
    assert_within(dp, want_p, tol_p.reshape(shape), "d/dp", dtype)
    assert_within(dt, want_t, (16 * eps * 1.7 / len(p2) * np.abs(np.log(c))).reshape(shape),
                  "d/dt", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CATEGORICAL_SHAPES, ids=str)
def test_sparse_categorical_crossentropy_matches_keras(dtype, shape):
    rng = np.random.default_rng(5)
    p = probabilities(shape, rng, dtype)
    labels = rng.integers(0, shape[-1], shape[:-1])
    lo, hi = bounds(dtype)
    eps = EPS[dtype]
    value, dp, _ = run(F.sparse_categorical_crossentropy, p, labels, dtype)
    want = ref.sparse_categorical_forward(p, labels, lo, hi)
    assert abs(value - want) <= 16 * eps * want + TINY32
    (want_p,) = ref.sparse_categorical_backward(1.7, p, labels, lo, hi)
    p2 = p.reshape(-1, shape[-1]).astype(np.float64)
    s = p2.sum(axis=1, keepdims=True)
    picked = np.clip(p2[np.arange(len(p2)), labels.reshape(-1)], lo, hi)[:, None]
    a = 1.7 / picked / len(p2)
    tol = 16 * eps * a * (1 / s + p2.max(axis=1, keepdims=True) / s ** 2)
    assert_within(dp, want_p, np.broadcast_to(tol, p2.shape).reshape(shape), "d/dp", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_losses_of_probabilities_0_and_1_are_finite(dtype):
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.3, 0.7]], dtype)
    labels = np.array([0, 2, 1])
    lo, hi = bounds(dtype)
    for fn, target in ((F.sparse_categorical_crossentropy, labels),
                       (F.categorical_crossentropy, np.eye(3, dtype=dtype)[labels])):
        value, dp, _ = run(fn, p, target, dtype, dout=1.0)
        want = (-np.log(hi) - np.log(lo) - np.log(np.float64(dtype(0.3)))) / 3
        assert np.isfinite(value) and abs(value - want) <= 8 * EPS[dtype] * want
        # rows clipped at the label get no gradient; the last row's is finite
        assert np.isfinite(dp).all()
        np.testing.assert_array_equal(dp[:2], 0)
        want_p = ref.categorical_backward(1.0, p, np.eye(3)[labels], lo, hi)[0]
        assert_within(dp, want_p, 16 * EPS[dtype] * 3, "d/dp", dtype)


def test_categorical_losses_of_a_softmax_output_are_taken_from_its_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [0.5, -0.25, 3.0], [30.0, -60.0, 0.0]],
                 np.float32)
    labels = np.array([1, 0, 2, 1])
    a, b = tensor(x), tensor(x)
    fused = F.sparse_categorical_crossentropy(F.softmax(a), labels)
    direct = F.cross_entropy(b, labels)
    assert fused.item() == direct.item() and np.isfinite(fused.item())
    fused.backward()
    direct.backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert np.abs(a.grad.numpy()).max() > 0.2  # misclassified rows still learn
    onehot = np.eye(3, dtype=np.float32)[labels]
    c, d = tensor(x), tensor(x)
    fused = F.categorical_crossentropy(F.softmax(c, axis=-1), onehot)
    direct = F.categorical_crossentropy(d, onehot, from_logits=True)
    assert fused.item() == direct.item()
    assert abs(direct.item() - ref.categorical_logits_forward(x, onehot)) <= \
        8 * EPS[np.float32] * direct.item()
    fused.backward()
    direct.backward()
    np.testing.assert_array_equal(c.grad.numpy(), d.grad.numpy())
    assert_within(d.grad.numpy(), ref.categorical_logits_backward(1.0, x, onehot)[0],
                  8 * EPS[np.float32] / 4, "d/dx")


def test_a_softmax_over_another_axis_is_not_taken_as_logits():
    x = tensor(np.array([[0.0, 5.0], [1.0, -2.0]]))
    p = F.softmax(x, axis=0)
    lo, hi = bounds(np.float32)
    got = F.sparse_categorical_crossentropy(p, np.array([0, 1])).item()
    want = ref.sparse_categorical_forward(p.numpy(), [0, 1], lo, hi)
    assert abs(got - want) <= 1e-6 * want


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_from_logits_matches_its_reference(dtype):
    rng = np.random.default_rng(6)
    x = (3 * rng.standard_normal((5, 4))).astype(dtype)
    t = probabilities((5, 4), rng, dtype)
    value, dx, dt = run(lambda a, b: F.categorical_crossentropy(a, b, from_logits=True), x, t,
                        dtype)
    eps = EPS[dtype]
    assert abs(value - ref.categorical_logits_forward(x, t)) <= 16 * eps * (np.abs(x).max() + 2)
    want_x, want_t = ref.categorical_logits_backward(1.7, x, t)
    assert_within(dx, want_x, 16 * eps * 1.7 / 5 * (1 + np.abs(x).max()), "d/dx", dtype)
    assert_within(dt, want_t, 16 * eps * 1.7 / 5 * (np.abs(x).max() + 2), "d/dt", dtype)


def test_categorical_float64_gradients_match_central_differences():
    rng = np.random.default_rng(7)
    p = probabilities((3, 4), rng) + 0.05
    t = probabilities((3, 4), rng)
    check_grad(F.categorical_crossentropy, tensor(p, np.float64), tensor(t, np.float64))
    check_grad(lambda a: F.sparse_categorical_crossentropy(a, np.array([0, 3, 1])),
               tensor(p, np.float64))
    x = 2 * rng.standard_normal((3, 4))
    check_grad(lambda a, b: F.categorical_crossentropy(a, b, from_logits=True),
               tensor(x, np.float64), tensor(t, np.float64))


def test_sparse_from_logits_is_cross_entropy_and_takes_sequences():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 3))
    got = F.sparse_categorical_crossentropy(tensor(x), labels, from_logits=True).item()
    assert got == F.cross_entropy(tensor(x.reshape(6, 5)), labels.reshape(6)).item()
    assert abs(got - ops_ref.cross_entropy_forward(x.reshape(6, 5), labels.reshape(6))) <= 1e-6


@pytest.mark.parametrize("labels", [np.array([2, 0, 1], np.int32), np.array([2, 0, 1], np.uint8),
                                    np.array([[2], [0], [1]]), [2, 0, 1]],
                         ids=["int32", "uint8", "column", "list"])
def test_sparse_labels_in_any_integer_form(labels):
    p = probabilities((3, 3), np.random.default_rng(9), np.float32)
    want = F.sparse_categorical_crossentropy(p, np.array([2, 0, 1])).item()
    assert F.sparse_categorical_crossentropy(p, labels).item() == want


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.sparse_categorical_crossentropy(np.full((2, 3), 1 / 3), [0, 3]), ValueError,
     r"class indices in \[0, 3\), got 3 at position 1"),
    (lambda: F.sparse_categorical_crossentropy(np.full((2, 3), 1 / 3), [-1, 0]), ValueError,
     "got -1 at position 0"),
    (lambda: F.sparse_categorical_crossentropy(tensor(np.zeros((2, 3))), [0, 1],
                                               from_logits=True) and
     F.sparse_categorical_crossentropy(tensor(np.zeros((2, 3))), [0, 5], from_logits=True),
     ValueError, "class indices"),
    (lambda: F.sparse_categorical_crossentropy(np.full((2, 3), 1 / 3), [0, 1, 2]), ValueError,
     r"shape \(2,\)"),
    (lambda: F.sparse_categorical_crossentropy(np.full((2, 3), 1 / 3), [0.0, 1.0]), TypeError,
     "integers"),
    (lambda: F.sparse_categorical_crossentropy(np.full(3, 1 / 3), [0]), ValueError, "2-D"),
    (lambda: F.categorical_crossentropy(np.full((2, 3), 1 / 3), np.eye(3)), ValueError,
     "same shape"),
    (lambda: F.binary_cross_entropy(np.full((4, 1), 0.5), np.ones(4)), ValueError, "same shape"),
], ids=["label-too-big", "label-negative", "from-logits-label", "labels-length", "float-labels",
        "1-D", "categorical-shape", "binary-shape"])
def test_bad_loss_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_losses_on_the_gpu_path_match_the_cpu(fake_gpu):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 1])
    onehot = np.eye(3, dtype=np.float32)[labels]
    p = probabilities((4, 3), rng, np.float32)
    cases = [
        lambda d: F.sparse_categorical_crossentropy(d(p), labels),
        lambda d: F.sparse_categorical_crossentropy(F.softmax(d(x)), labels),
        lambda d: F.categorical_crossentropy(d(p), onehot),
        lambda d: F.categorical_crossentropy(d(x), onehot, from_logits=True),
        lambda d: F.binary_cross_entropy(d(p), onehot),
        lambda d: F.binary_cross_entropy(d(x), onehot, from_logits=True),
    ]
    for i, case in enumerate(cases):
        cpu_in, gpu_in = [], []
        cpu = case(lambda a: cpu_in.append(tensor(a)) or cpu_in[-1])
        gpu = case(lambda a: gpu_in.append(tensor(a).to("cuda")) or gpu_in[-1])
        assert gpu.device == "cuda"
        assert abs(gpu.item() - cpu.item()) <= 1e-6 * abs(cpu.item()), i
        cpu.backward()
        gpu.backward()
        assert_within(gpu_in[0].grad.numpy(), cpu_in[0].grad.numpy(), 1e-6, f"case {i}")


# ================================================================ fastnn.losses (Keras names)

def test_keras_names_resolve_to_losses_in_keras_argument_order():
    rng = np.random.default_rng(11)
    p = probabilities((4, 3), rng, np.float32)
    labels = np.array([0, 2, 1, 1])
    onehot = np.eye(3, dtype=np.float32)[labels]
    assert losses.get("sparse_categorical_crossentropy")(labels, p).item() == \
        F.sparse_categorical_crossentropy(p, labels).item()
    assert losses.get("Categorical_Crossentropy")(onehot, p).item() == \
        F.categorical_crossentropy(p, onehot).item()
    assert losses.get("binary_crossentropy")(onehot, p).item() == \
        F.binary_cross_entropy(p, onehot).item()
    for name in ("mse", "mean_squared_error"):
        assert losses.get(name)(onehot, p).item() == F.mse_loss(p, onehot).item()
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="identifier"):
        losses.get(3)


def test_keras_loss_objects_carry_from_logits():
    x = np.array([[2.0, -1.0, 0.5]], np.float32)
    loss = losses.get(losses.SparseCategoricalCrossentropy(from_logits=True))
    assert loss([2], x).item() == F.cross_entropy(x, [2]).item()
    assert losses.get(losses.BinaryCrossentropy)(np.ones((1, 3)), np.full((1, 3), 0.5)).item() \
        == pytest.approx(np.log(2), rel=1e-6)
    assert repr(losses.CategoricalCrossentropy(from_logits=True)) == \
        "CategoricalCrossentropy(from_logits=True)"


def test_targets_with_a_trailing_axis_of_one_are_matched_as_keras_does():
    y_pred = tensor(np.array([[0.2], [0.9], [0.6]]))
    y_true = np.array([0.0, 1.0, 1.0])
    assert losses.mse(y_true, y_pred).item() == \
        F.mse_loss(y_pred, y_true.reshape(3, 1)).item()
    assert losses.binary_crossentropy(y_true, y_pred).item() == \
        F.binary_cross_entropy(y_pred, y_true.reshape(3, 1)).item()


# ================================================================ regularizers

@pytest.mark.parametrize("reg,l1,l2", [(regularizers.l1(0.3), 0.3, 0.0),
                                       (regularizers.l2(0.2), 0.0, 0.2),
                                       (regularizers.l1_l2(l1=0.1, l2=0.05), 0.1, 0.05),
                                       (regularizers.L1(), 0.01, 0.0),
                                       (regularizers.L2(), 0.0, 0.01)],
                         ids=["l1", "l2", "l1_l2", "L1-default", "L2-default"])
def test_regularizer_penalty_and_gradient(reg, l1, l2):
    w = np.array([[1.5, -2.0, 0.0], [0.25, -0.5, 3.0]])
    t = tensor(w, np.float64)
    penalty = reg(t)
    assert penalty.item() == pytest.approx(l1 * np.abs(w).sum() + l2 * (w ** 2).sum(), rel=1e-15)
    penalty.backward()
    np.testing.assert_allclose(t.grad.numpy(), l1 * np.sign(w) + 2 * l2 * w, rtol=1e-15)


def test_l1_l2_without_factors_is_zero_and_keras_defaults_hold():
    assert regularizers.l1_l2()(tensor(np.ones(3))).item() == 0.0
    assert regularizers.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.l2().get_config() == {"l2": 0.01}


def test_regularizers_by_name_and_config():
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    reg = regularizers.get({"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}})
    assert reg.get_config() == {"l1": 0.1, "l2": 0.2}
    assert regularizers.get(None) is None
    with pytest.raises(ValueError, match="unknown regularizer 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="'l2' must be a finite number >= 0"):
        regularizers.l2(-0.1)
    with pytest.raises(TypeError, match="'l1' must be a number"):
        regularizers.l1("0.1")
    with pytest.raises(TypeError, match="expected None"):
        regularizers.get(3)


def test_layer_penalties_are_added_to_the_loss_as_keras_does():
    fastnn.manual_seed(0)
    model = nn.Sequential([nn.Conv2D(2, 3, kernel_regularizer=regularizers.l1(0.01)),
                           nn.Flatten(), nn.Dense(3, kernel_regularizer="l2"), nn.Dense(2)])
    x = fastnn.tensor(np.random.default_rng(0).standard_normal((2, 5, 5, 1)).astype(np.float32))
    model(x)
    conv, dense = model[0].kernel.numpy(), model[2].kernel.numpy()
    assert len(model.regularization_losses()) == 2
    total = model.regularization_loss()
    conv64, dense64 = conv.astype(np.float64), dense.astype(np.float64)
    want = 0.01 * np.abs(conv64).sum() + 0.01 * (dense64 ** 2).sum()
    assert total.item() == pytest.approx(want, rel=1e-6)
    model.zero_grad()
    total.backward()
    np.testing.assert_allclose(model[2].kernel.grad.numpy(), 0.02 * dense, rtol=1e-6)
    np.testing.assert_allclose(model[0].kernel.grad.numpy(), 0.01 * np.sign(conv), rtol=1e-6)
    assert model[3].kernel.grad is None  # no regularizer there


def test_a_model_without_regularizers_adds_zero():
    model = nn.Sequential([nn.Dense(2)])
    model(fastnn.tensor(np.ones((1, 3), np.float32)))
    zero = model.regularization_loss()
    assert zero.item() == 0.0 and zero.dtype == np.float32


@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy", "cross_entropy",
                                  "sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_compile_refuses_functional_losses_whose_order_is_pytorchs(name):
    """F's losses take (input, target); compile calls loss(y_true, y_pred)."""
    from fastnn import functional as F
    from fastnn.models import Sequential
    model = Sequential([fastnn.nn.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="PyTorch's order"):
        model.compile(optimizer="sgd", loss=getattr(F, name))
