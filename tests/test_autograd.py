"""The autograd engine and the Tensor: graph properties, grad mode, memory
sharing, errors, repeatable randomness, and learning toy problems end to end.
The ops' values and gradients are checked in test_autograd_ops.py."""
import sys

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads


def leaf(values, dtype="float64"):
    return fastnn.tensor(np.asarray(values, dtype=dtype), requires_grad=True, dtype=dtype)


# ---------------------------------------------------------------- the Tensor
def test_tensor_wraps_float32_array_without_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = fastnn.tensor(a)
    a[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0
    assert np.shares_memory(t.numpy(), a)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float32 and t.device == "cpu"


def test_tensor_converts_other_dtypes():
    assert fastnn.tensor([1.5, 2.5]).dtype == np.float32
    assert fastnn.tensor(np.ones(3, np.float64)).dtype == np.float32
    assert fastnn.tensor([1, 2, 3]).dtype == np.int64
    assert fastnn.tensor(np.ones(3), dtype="float64").dtype == np.float64
    big_endian = np.arange(4, dtype=">f4")
    t = fastnn.tensor(big_endian)
    assert t.dtype == np.float32 and t.dtype.isnative
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])


def test_item_detach_and_data():
    x = leaf([[3.0]])
    assert x.item() == 3.0 and isinstance(x.item(), float)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        leaf([1.0, 2.0]).item()
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), x.numpy())
    y = (x * 2).detach() * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[6.0]])  # (2x) treated as a constant


def test_requires_grad_only_on_floats():
    with pytest.raises(TypeError, match="int64"):
        fastnn.tensor([1, 2], requires_grad=True)
    t = fastnn.tensor([1, 2])
    with pytest.raises(TypeError, match="int64"):
        t.requires_grad = True


def test_numpy_operands_defer_to_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([10.0, 20.0]) * x + 1.0
    assert isinstance(y, fastnn.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [10.0, 20.0])


def test_python_float_keeps_float32():
    x = fastnn.tensor(np.ones(3, np.float32), requires_grad=True)
    assert (x * 0.5 + 2).dtype == np.float32
    assert (np.float64(2.0) * x).dtype == np.float32
    assert (fastnn.tensor([1, 2]) * 0.5).dtype == np.float32


# ---------------------------------------------------------------- graph
def test_shared_input_gets_sum_of_gradients():
    x = leaf([1.0, -2.0, 3.0])
    y = x * x + x  # d/dx = 2x + 1
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1)


def test_diamond_graph():
    x = leaf([0.5, 1.5])
    a = x * 3.0
    b = a.exp()
    c = a * a
    (b + c).sum().backward()  # d/dx = 3 e^(3x) + 18 x
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(3 * xv) + 18 * xv, rtol=1e-12)


def test_gradients_accumulate_over_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * x.numpy())


def test_leaf_gradients_never_share_memory():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x + y).backward(np.array([1.0, 1.0]))
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    x.grad.numpy()[:] = 100
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])


def test_graph_is_freed_after_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with fastnn.no_grad():
        assert not fastnn.is_grad_enabled()
        y = F.relu(x * 2 + 1)
        with fastnn.enable_grad():
            z = x * 2
    assert fastnn.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_as_decorator():
    @fastnn.no_grad()
    def f(t):
        return t * 2

    assert not f(leaf([1.0])).requires_grad
    assert fastnn.is_grad_enabled()


def test_constant_inputs_get_no_gradient():
    x = leaf([1.0, 2.0])
    c = fastnn.tensor([5.0, 6.0], dtype="float64")
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 6.0])


def test_chain_of_100000_ops():
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0001
    # no recursion in backward: Python's limit is far below the chain's depth
    assert sys.getrecursionlimit() < 100_000
    y.backward()
    np.testing.assert_allclose(y.item(), 1.0 + 10.0, rtol=1e-9)
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_backward_with_explicit_gradient():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    y.backward(np.array([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])


def test_inplace_update_needs_no_grad():
    w = fastnn.tensor(np.ones(4, np.float32), requires_grad=True)
    g = np.full(4, 2.0, np.float32)
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= g
    with fastnn.no_grad():
        w -= 0.25 * fastnn.tensor(g)
        w.add_(fastnn.tensor(g), alpha=-0.5)
    np.testing.assert_allclose(w.numpy(), 1.0 - 0.5 - 1.0)
    assert w.requires_grad and w.grad_fn is None


# ---------------------------------------------------------------- errors
def test_non_scalar_backward_needs_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"non-scalar.*\(2,\)"):
        (x * 2).backward()


def test_wrong_grad_shape():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_through_integer_tensor():
    t = fastnn.tensor([1, 2, 3])
    with pytest.raises(TypeError, match="int64"):
        t.sum().backward()


def test_matmul_shape_mismatch_names_shapes():
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ b


def test_broadcast_mismatch_names_shapes():
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((4,)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        a + b


def test_linear_shape_errors():
    x = fastnn.tensor(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"'x'.*\(\.\.\., 5\).*\(4, 3\)"):
        F.linear(x, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"'b'.*\(2,\).*\(3,\)"):
        F.linear(x, np.ones((3, 2), np.float32), np.ones(3, np.float32))


def test_cross_entropy_bad_labels():
    logits = fastnn.tensor(np.zeros((3, 4), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"\[0, 4\).*7"):
        F.cross_entropy(logits, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        F.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="float"):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))


def test_bad_argument_types():
    with pytest.raises(TypeError, match="'x'"):
        F.relu("abc")
    with pytest.raises(TypeError, match="'b'"):
        leaf([1.0]) + "abc"


def test_device_errors_without_gpu():
    x = leaf([1.0])
    assert x.to("cpu") is x
    with pytest.raises(ValueError, match="'device'"):
        x.to("tpu")
    if not fastnn.cuda.is_available():
        with pytest.raises(RuntimeError, match="(?i)cuda|gpu"):
            fastnn.tensor(np.ones(2, np.float32)).to("cuda")


@pytest.mark.skipif(not fastnn.cuda.is_available(), reason="needs a CUDA GPU")
def test_mixing_devices_is_an_error():
    a = fastnn.tensor(np.ones(3, np.float32)).to("cuda")
    b = fastnn.tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="cpu.*cuda|cuda.*cpu"):
        a + b


# ---------------------------------------------------------------- randomness
def dropout_mask(n, seed, rate=0.5):
    fastnn.manual_seed(seed)
    return F.dropout(fastnn.tensor(np.ones(n, np.float32)), rate).numpy().copy()


def test_manual_seed_repeats_dropout_for_any_thread_count():
    n = 200_000  # large enough that the kernel splits over threads
    with num_threads(1):
        one = dropout_mask(n, 7)
    with num_threads(2):
        two = dropout_mask(n, 7)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, dropout_mask(n, 8))


def test_manual_seed_repeats_generator_draws():
    fastnn.manual_seed(3)
    a = fastnn._random.generator().standard_normal(5)
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(a, fastnn._random.generator().standard_normal(5))


# ---------------------------------------------------------------- learning
def two_spirals(n, seed=0):
    """Two interleaved spirals of 1.5 turns, n points each."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]).astype(np.float32)
    y = np.repeat(np.array([0, 1], np.int64), n)
    return x, y


def xor_blobs(n, seed=0):
    """Four Gaussian blobs at (+-1, +-1), labelled by the XOR of the signs."""
    rng = np.random.default_rng(seed)
    centres = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], np.float32)
    labels = np.array([0, 0, 1, 1], np.int64)
    which = rng.integers(0, 4, n)
    x = centres[which] + rng.normal(0, 0.25, (n, 2)).astype(np.float32)
    return x, labels[which]


def train_mlp(x, y, hidden, lr, steps, seed=0):
    """A 2-layer ReLU MLP written with fastnn.functional, trained by plain
    full-batch gradient descent on .grad; returns the training accuracy."""
    fastnn.manual_seed(seed)
    rng = fastnn._random.generator()

    def glorot(n_in, n_out):
        limit = np.sqrt(6.0 / (n_in + n_out))
        return fastnn.tensor(rng.uniform(-limit, limit, (n_in, n_out)), requires_grad=True)

    params = [glorot(x.shape[1], hidden), fastnn.tensor(np.zeros(hidden), requires_grad=True),
              glorot(hidden, 2), fastnn.tensor(np.zeros(2), requires_grad=True)]
    w1, b1, w2, b2 = params
    xt = fastnn.tensor(x)
    for _ in range(steps):
        for p in params:
            p.grad = None
        logits = F.linear(F.relu(F.linear(xt, w1, b1)), w2, b2)
        F.cross_entropy(logits, y).backward()
        with fastnn.no_grad():
            for p in params:
                p -= lr * p.grad
    with fastnn.no_grad():
        logits = F.linear(F.relu(F.linear(xt, w1, b1)), w2, b2)
    return float((logits.numpy().argmax(axis=1) == y).mean())


def test_mlp_learns_xor():
    x, y = xor_blobs(400)
    assert train_mlp(x, y, hidden=16, lr=0.5, steps=300) >= 0.99


def test_mlp_learns_two_spirals():
    x, y = two_spirals(200)
    assert train_mlp(3 * x, y, hidden=128, lr=0.3, steps=4000) >= 0.99


def test_training_is_deterministic():
    x, y = xor_blobs(200, seed=1)
    runs = []
    for _ in range(2):
        fastnn.manual_seed(5)
        w = fastnn.tensor(fastnn._random.generator().standard_normal((2, 2)), requires_grad=True)
        for _ in range(20):
            w.grad = None
            F.cross_entropy(F.dropout(fastnn.tensor(x), 0.2) @ w, y).backward()
            with fastnn.no_grad():
                w -= 0.1 * w.grad
        runs.append(w.numpy().copy())
    np.testing.assert_array_equal(runs[0], runs[1])


# ---------------------------------------------------------------- denormals
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_flush_denormals_but_leave_the_caller_mode(threads):
    n = 100_000  # split over the threads
    tiny = np.full(n, 1e-40, np.float32)  # a denormal input reads as 0
    with num_threads(threads):
        np.testing.assert_array_equal(fastnn._C.tanh(tiny), 0.0)  # tanh(x) = x near 0
        # sigmoid(-88) is about 6e-39, a denormal result: flushed to 0
        np.testing.assert_array_equal(fastnn._C.sigmoid(np.full(n, -88.0, np.float32)), 0.0)
    # the Python thread still computes denormals after the kernels ran
    assert np.float32(1e-38) * np.float32(0.01) != 0


# ---------------------------------------------------------------- in place and versions
def test_backward_refuses_inputs_changed_in_place():
    w = leaf([1.0, 2.0])
    c = fastnn.tensor([3.0, 4.0], dtype="float64")
    z = (c * w).sum()
    c.mul_(10)
    with pytest.raises(RuntimeError, match="in-place"):
        z.backward()


def test_backward_refuses_outputs_changed_in_place():
    w = leaf([1.0, 2.0])
    e = w.exp()
    s = e.sum()
    with fastnn.no_grad():
        e.add_(100.0)
    with pytest.raises(RuntimeError, match="in-place"):
        s.backward()


def test_backward_refuses_leaf_updated_before_backward():
    w = leaf([1.0, 2.0])
    loss = (w * w).sum()
    with fastnn.no_grad():
        w.sub_(fastnn.tensor([1.0, 1.0], dtype="float64"))
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_changing_a_view_counts_for_its_base():
    x = fastnn.tensor([1.0, 2.0, 3.0, 4.0], dtype="float64")
    w = leaf([1.0, 2.0])
    y = (x[1:3] * w).sum()
    x.mul_(0)  # changes the slice that mul saved
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()
    v = x.reshape(2, 2)
    z = (x * w.sum()).sum()
    v[0, 0] = 5.0
    with pytest.raises(RuntimeError, match="in-place"):
        z.backward()


def test_cross_entropy_keeps_the_forward_labels():
    logits = fastnn.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    labels = np.array([0, 1])
    loss = F.cross_entropy(logits, labels)
    labels[:] = [2, 2]
    loss.backward()
    expected = np.full((2, 3), 1 / 3 / 2, np.float32)
    expected[[0, 1], [0, 1]] -= 0.5
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-6)


def test_inplace_ops_write_through_views_and_data():
    p = fastnn.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    p.data.mul_(0.5)
    np.testing.assert_array_equal(p.numpy(), [0.5, 1.0])
    p.detach().copy_(fastnn.tensor([7.0, 8.0]))
    np.testing.assert_array_equal(p.numpy(), [7.0, 8.0])
    q = fastnn.tensor(np.zeros(4, np.float32))
    q.add_(q)  # aliased operands
    q[1:3] = 5.0
    np.testing.assert_array_equal(q.numpy(), [0, 5, 5, 0])


def test_numpy_conversion_copies_only_when_asked():
    t = fastnn.tensor(np.zeros(3, np.float32))
    a = np.array(t)
    a[0] = 42
    assert t.numpy()[0] == 0
    assert np.shares_memory(np.asarray(t), t.numpy())


# ---------------------------------------------------------------- what users expect
def test_relu_keeps_nan():
    out = F.relu(fastnn.tensor([np.nan, -1.0, 2.0])).numpy()
    assert np.isnan(out[0]) and out[1] == 0 and out[2] == 2


def test_transpose_of_two_axes_swaps_them():
    a = fastnn.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert a.transpose(0, 1).shape == (3, 2)
    assert a.T.shape == (3, 2)
    b = fastnn.tensor(np.zeros((2, 3, 4), np.float32))
    assert b.transpose(0, 1).shape == (3, 2, 4)
    assert b.transpose((2, 0, 1)).shape == (4, 2, 3)


def test_integer_operands_keep_float32():
    x_int = np.arange(6).reshape(2, 3)
    w = fastnn.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    y = F.linear(x_int, w)
    assert y.dtype == np.float32
    assert F.mse_loss(y, np.zeros((2, 2), np.int64)).dtype == np.float32
    z = (y * fastnn.tensor([[1, 2], [3, 4]])).sum()
    assert z.dtype == np.float32
    z.backward()
    assert w.grad.dtype == np.float32


def test_comparisons_and_reductions_users_expect():
    pred = fastnn.tensor([0, 1, 2, 1])
    assert (pred == np.array([0, 1, 1, 1])).numpy().tolist() == [True, True, False, True]
    assert (pred != 1).numpy().sum() == 2
    x = leaf([[3.0, -1.0], [-4.0, 2.0]])
    assert x.argmax(axis=1).numpy().tolist() == [0, 1]
    m = x.min()
    np.testing.assert_equal(m.item(), -4.0)
    (m + x.abs().sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, -1], [0, 1]])  # sign, plus 1 at the min
    with pytest.raises(TypeError, match="0-d"):
        list(fastnn.tensor(3.0))
    assert [t.item() for t in fastnn.tensor([1.0, 2.0])] == [1.0, 2.0]


def test_empty_batch_losses_backward():
    logits = fastnn.tensor(np.zeros((0, 3), np.float32), requires_grad=True)
    F.cross_entropy(logits, np.zeros(0, np.int64)).backward()
    assert logits.grad.shape == (0, 3)
    y = fastnn.tensor(np.zeros((0, 2), np.float32), requires_grad=True)
    F.mse_loss(y, np.zeros((0, 2), np.float32)).backward()
    assert y.grad.shape == (0, 2)


def test_error_messages_say_what_is_wrong():
    with pytest.raises(ValueError, match="(?i)integers to negative"):
        fastnn.tensor([1, 2]) ** -1
    with pytest.raises(ValueError, match="'rate'"):
        F.dropout(fastnn.tensor(np.ones(3, np.float32)), 0.99999999)
    with pytest.raises(TypeError, match="native byte order"):
        fastnn._C.cross_entropy(np.zeros((2, 3), np.float32), np.zeros(2, ">i8"))


# ---------------------------------------------------------------- grad mode
def test_grad_mode_is_per_thread():
    import threading
    x = leaf([1.0])
    inside, release = threading.Event(), threading.Event()

    def worker():
        with fastnn.no_grad():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(10)
    try:
        assert fastnn.is_grad_enabled() and (x * 2).requires_grad
    finally:
        release.set()
        t.join()


def test_no_grad_object_reentrant_and_bare_decorator():
    ctx = fastnn.no_grad()
    with ctx:
        with ctx:
            pass
        assert not fastnn.is_grad_enabled()
    assert fastnn.is_grad_enabled()

    @fastnn.no_grad
    def f(t):
        return t * 2

    assert not f(leaf([1.0])).requires_grad
