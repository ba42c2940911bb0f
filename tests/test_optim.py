"""fastnn.optim: the optimizers' trajectories against PyTorch's formulas
written out in float64 NumPy (reference/optim.py), on every SIMD path and
on the plain scalar loop, the same bits at 1 and 2 threads; then the
optimizer interface (groups, state_dict, skipping parameters without a
gradient, closures, in-place versioning, the GPU path on the fake device),
the argument checks of the classes and of the kernels' bindings, and
gradient clipping."""
import functools
import math

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads
from fastnn import _C, _backend, nn, optim
from reference import optim as ref
from reference.checks import assert_within

EPS32 = float(np.finfo(np.float32).eps)
TINY32 = float(np.finfo(np.float32).tiny)
STEPS = 50

# every option of every optimizer, alone and combined
CASES = {
    "SGD": [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.3),
            dict(lr=0.1, momentum=0.9, nesterov=True),
            dict(lr=0.05, momentum=0.5, weight_decay=0.1, dampening=0.1),
            dict(lr=0.1, weight_decay=0.2)],
    "Adagrad": [dict(), dict(lr=0.1, lr_decay=0.05), dict(weight_decay=0.1),
                dict(initial_accumulator_value=0.5, eps=1e-3),
                dict(lr=0.05, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1)],
    "RMSprop": [dict(), dict(alpha=0.5, eps=1e-4), dict(momentum=0.9), dict(centered=True),
                dict(weight_decay=0.1),
                dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.05)],
    "Adam": [dict(), dict(lr=0.01, betas=(0.8, 0.99)), dict(eps=1e-3), dict(weight_decay=0.1),
             dict(amsgrad=True), dict(lr=0.01, amsgrad=True, weight_decay=0.05)],
    "AdamW": [dict(), dict(lr=0.01, weight_decay=0.1), dict(amsgrad=True, weight_decay=0.05)],
}
SHAPES = [(1,), (7,), (3, 11), (257,), (2, 3, 5)]  # every tail length of the vector widths


def _case_params():
    def label(name, options):
        return name + "-" + ("-".join(f"{k}={v}" for k, v in options.items()) or "defaults")
    return [pytest.param(name, options, id=label(name, options))
            for name, cases in CASES.items() for options in cases]


def reference_step(name, options):
    """The reference update for an optimizer class name and its options."""
    if name == "AdamW":
        opts = dict(options)
        opts.setdefault("weight_decay", 0.01)
        return functools.partial(ref.adam_step, decoupled=True, **opts)
    return functools.partial(ref.STEPS[name], **options)


def gradient_sequence(shapes, steps, seed):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]


def run_trajectory(name, options, shapes, steps=STEPS, seed=0):
    """(fastnn's parameters after `steps` steps of a fixed gradient sequence,
    the reference's, and an error bound per element): each step may round p
    by an ulp and its update by a few, so the bound adds 2 ulps of |p| and 8
    of |update| over the steps."""
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = gradient_sequence(shapes, steps, seed + 1)
    params = [fastnn.tensor(p.copy(), requires_grad=True) for p in start]
    opt = getattr(optim, name)(params, **options)
    step = reference_step(name, options)
    want = [p.astype(np.float64) for p in start]
    states = [{} for _ in shapes]
    scale = [np.zeros(s) for s in shapes]
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = fastnn.tensor(g)
        opt.step()
        for i, g in enumerate(gs):
            new = step(want[i], g, states[i])
            scale[i] += np.abs(new) + 4 * np.abs(new - want[i])
            want[i] = new
    bounds = [2 * EPS32 * s + TINY32 for s in scale]
    return [p.numpy().copy() for p in params], want, bounds


class ScalarC:
    """fastnn._C with the optimizer steps on the plain scalar loop."""

    def __getattr__(self, name):
        f = getattr(_C, name)
        return getattr(_C, name + "_reference") if name.endswith("_step") else f


@pytest.mark.parametrize("name,options", _case_params())
def test_trajectory_matches_the_reference_on_every_simd_path(isa, name, options):
    got, want, bounds = run_trajectory(name, options, SHAPES)
    for i, (g, w, b) in enumerate(zip(got, want, bounds)):
        assert_within(g, w, b, f"{name} parameter {i} after {STEPS} steps", np.float32)


@pytest.mark.parametrize("name,options", _case_params())
def test_trajectory_matches_the_reference_on_the_scalar_loop(monkeypatch, name, options):
    monkeypatch.setattr(_backend.cpu, "_C", ScalarC())
    got, want, bounds = run_trajectory(name, options, SHAPES)
    for i, (g, w, b) in enumerate(zip(got, want, bounds)):
        assert_within(g, w, b, f"{name} parameter {i} after {STEPS} steps (scalar)",
                      np.float32)


@pytest.mark.parametrize("name,options", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr_decay=0.01, weight_decay=0.01)),
    ("RMSprop", dict(centered=True, momentum=0.5, weight_decay=0.01)),
    ("Adam", dict(amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(amsgrad=True)),
])
def test_threads_split_big_tensors_and_give_the_same_bits(isa, name, options):
    # 77,100 + 5 + 40,000 elements: more than one thread's share, split
    # across tensor boundaries
    shapes = [(300, 257), (5,), (40_000,)]
    runs = []
    for n in (1, 2):
        with num_threads(n):
            runs.append(run_trajectory(name, options, shapes, steps=3))
    (got1, want, bounds), (got2, _, _) = runs
    for i in range(len(shapes)):
        np.testing.assert_array_equal(got2[i], got1[i], err_msg=f"tensor {i} differs between "
                                                                "1 and 2 threads")
        assert_within(got1[i], want[i], bounds[i], f"{name} tensor {i}")


def test_first_sgd_momentum_step_takes_the_gradient_undampened():
    p = fastnn.tensor(np.zeros(3, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0, momentum=0.9, dampening=0.5)
    p.grad = fastnn.tensor(np.array([1.0, -2.0, 4.0], np.float32))
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], [1.0, -2.0, 4.0])
    np.testing.assert_array_equal(p.numpy(), [-1.0, 2.0, -4.0])
    opt.step()  # then b = 0.9 b + 0.5 g
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [1.4, -2.8, 5.6], rtol=1e-6)


def test_adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign():
    # bias correction makes m_hat = g and v_hat = g^2 on step 1
    p = fastnn.tensor(np.zeros(4, np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=0.01)
    p.grad = fastnn.tensor(np.array([3.0, -0.5, 1e-3, -20.0], np.float32))
    opt.step()
    np.testing.assert_allclose(p.numpy(), [-0.01, 0.01, -0.01, 0.01], rtol=1e-4)
    assert opt.state[p]["step"] == 1


# ================================================================ the optimizer interface

def params_of(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [fastnn.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
            for s in shapes]


def set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = fastnn.tensor(rng.standard_normal(p.shape).astype(np.float32))


def test_parameter_groups_take_their_own_learning_rate():
    a, b = params_of((3,), (4,))
    a0, b0 = a.numpy().copy(), b.numpy().copy()
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    set_grads([a, b], 1)
    ga, gb = a.grad.numpy().copy(), b.grad.numpy().copy()
    opt.step()
    assert_within(a.numpy(), a0 - 0.5 * ga.astype(np.float64), 2 * EPS32 * (np.abs(a0) + 1))
    assert_within(b.numpy(), b0 - 0.1 * gb.astype(np.float64), 2 * EPS32 * (np.abs(b0) + 1))
    assert opt.param_groups[1]["momentum"] == 0.0 and opt.defaults["lr"] == 0.1


def test_a_learning_rate_changed_between_steps_is_used():
    (p,) = params_of((5,))
    opt = optim.SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.0
    set_grads([p], 2)
    before = p.numpy().copy()
    opt.step()
    np.testing.assert_array_equal(p.numpy(), before)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_state_dict_round_trip_continues_the_same_trajectory(name):
    options = {"SGD": dict(lr=0.1, momentum=0.9), "RMSprop": dict(centered=True, momentum=0.3),
               "Adam": dict(amsgrad=True)}.get(name, {})
    cls = getattr(optim, name)
    a = params_of((3, 4), (5,))
    opt_a = cls(a, **options)
    for s in range(5):
        set_grads(a, s)
        opt_a.step()
    saved = opt_a.state_dict()
    b = [fastnn.tensor(p.numpy().copy(), requires_grad=True) for p in a]
    opt_b = cls(b, lr=123.0)  # the saved hyperparameters replace these
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    for s in range(5, 9):
        set_grads(a, s)
        set_grads(b, s)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pb.numpy(), pa.numpy())


def test_state_dict_is_a_copy_in_pytorch_layout():
    a, b = params_of((2,), (3,))
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}])
    set_grads([b], 0)  # a has no gradient: no state
    opt.step()
    sd = opt.state_dict()
    assert list(sd["state"]) == [1]
    assert sorted(sd["state"][1]) == ["exp_avg", "exp_avg_sq", "step"]
    assert sd["state"][1]["step"] == 1
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    sd["state"][1]["exp_avg"][...] = 7.0
    assert not np.any(opt.state[b]["exp_avg"] == 7.0)


def test_load_state_dict_rejects_a_mismatched_optimizer():
    a, b = params_of((2,), (3,))
    opt = optim.Adam([a, b])
    set_grads([a, b], 0)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="2 parameters"):
        optim.Adam([a]).load_state_dict(sd)
    c, d = params_of((2,), (4,))
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([c, d]).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        optim.Adam([c, d]).load_state_dict({"state": {}})


def test_parameters_without_a_gradient_are_left_alone():
    a, b = params_of((3,), (3,))
    opt = optim.Adam([a, b])
    b0 = b.numpy().copy()
    for s in range(3):
        a.grad = None
        set_grads([a], s)
        opt.step()
    np.testing.assert_array_equal(b.numpy(), b0)
    assert b not in opt.state and opt.state[a]["step"] == 3
    set_grads([b], 9)
    opt.step()  # b's own first step: bias correction of step 1
    assert opt.state[b]["step"] == 1 and opt.state[a]["step"] == 4


def test_zero_grad_clears_or_zeroes():
    (p,) = params_of((3,))
    opt = optim.SGD([p])
    set_grads([p], 0)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3))
    opt.zero_grad()
    assert p.grad is None


def test_step_runs_the_closure_with_grad_and_returns_its_loss():
    w = fastnn.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with fastnn.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6], rtol=1e-6)


def test_a_step_counts_as_an_in_place_change_for_autograd():
    (w,) = params_of((3,))
    y = (w * w).sum()  # saved w for its gradient
    opt = optim.SGD([w], lr=0.1)
    set_grads([w], 0)
    opt.step()
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


def test_a_model_trains_with_adam():
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of the signs: needs the hidden layer
    model = nn.Sequential([nn.Dense(16, activation="tanh"), nn.Dense(2)])
    model(fastnn.tensor(x))
    opt = optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(fastnn.tensor(x)), y).backward()
        opt.step()
    with fastnn.no_grad():
        accuracy = (model(fastnn.tensor(x)).numpy().argmax(1) == y).mean()
    assert accuracy > 0.95, accuracy


# ================================================================ bad arguments

@pytest.mark.parametrize("params", [[], (), iter([])], ids=["list", "tuple", "iterator"])
def test_an_empty_parameter_list_is_a_value_error(params):
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam(params)


def test_a_model_without_weights_yet_gives_a_hint():
    with pytest.raises(ValueError, match="first call"):
        optim.SGD(nn.Sequential([nn.Dense(3)]).parameters())


@pytest.mark.parametrize("make,error,match", [
    (lambda p: optim.SGD(p, lr=-1.0), ValueError, "'lr' must be a finite number >= 0"),
    (lambda p: optim.SGD(p, lr=float("inf")), ValueError, "'lr' must be a finite number"),
    (lambda p: optim.SGD(p, lr="0.1"), TypeError, "'lr' must be a number"),
    (lambda p: optim.SGD(p, momentum=-0.1), ValueError, "'momentum'"),
    (lambda p: optim.SGD(p, nesterov=True), ValueError, "nesterov"),
    (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p: optim.SGD(p, weight_decay=-1e-4), ValueError, "'weight_decay'"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError, r"'betas\[0\]' must be in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), ValueError, r"'betas\[1\]'"),
    (lambda p: optim.Adam(p, betas=0.9), TypeError, "'betas' must be a pair"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "'eps'"),
    (lambda p: optim.Adam(p, lr=float("nan")), ValueError, "'lr'"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), ValueError, "'weight_decay'"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), ValueError, "'lr_decay'"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), ValueError,
     "'initial_accumulator_value'"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), ValueError, "'alpha'"),
    (lambda p: optim.RMSprop(p, momentum=-0.5), ValueError, "'momentum'"),
    (lambda p: optim.Adam([{"params": p, "betas2": 0.9}]), ValueError, "unknown hyperparameters"),
    (lambda p: optim.Adam([{"lr": 0.1}]), ValueError, "no 'params'"),
    (lambda p: optim.Adam([{"params": p}, p[0]]), TypeError, "only Tensors or only dicts"),
    (lambda p: optim.Adam(p + p), ValueError, "appears twice"),
    (lambda p: optim.Adam([{"params": p}, {"params": p}]), ValueError, "appears twice"),
    (lambda p: optim.Adam(p[0].numpy()), TypeError, "iterable of Tensors"),
    (lambda p: optim.Adam([p[0].numpy()]), TypeError, r"params\[0\] must be a Tensor"),
    (lambda p: optim.Adam([p[0] * 2]), ValueError, "not a leaf"),
    (lambda p: optim.Adam([fastnn.tensor(np.zeros(2), dtype="float64", requires_grad=True)]),
     TypeError, "float32"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_hyperparameters_and_parameters_raise(make, error, match):
    with pytest.raises(error, match=match):
        make(params_of((2,)))


def test_a_single_tensor_is_accepted_as_the_parameters():
    (p,) = params_of((2,))
    assert optim.SGD(p).param_groups[0]["params"] == [p]


def test_a_gradient_of_the_wrong_shape_raises_before_any_change():
    a, b = params_of((3,), (2,))
    opt = optim.Adam([a, b])
    a.grad = fastnn.tensor(np.ones(3, np.float32))
    b.grad = fastnn.tensor(np.ones(5, np.float32))
    a0 = a.numpy().copy()
    with pytest.raises(ValueError, match=r"shape \(2,\) has a gradient of shape \(5,\)"):
        opt.step()
    np.testing.assert_array_equal(a.numpy(), a0)
    assert opt.state[a]["step"] == 0


def test_a_float64_gradient_is_taken_as_float32():
    (p,) = params_of((3,))
    q = fastnn.tensor(p.numpy().copy(), requires_grad=True)
    g = np.array([0.1, -0.2, 0.3])
    p.grad = fastnn.tensor(g, dtype="float64")
    q.grad = fastnn.tensor(g.astype(np.float32))
    optim.Adam([p]).step()
    optim.Adam([q]).step()
    np.testing.assert_array_equal(p.numpy(), q.numpy())


def _adam_args(params, grads, **kw):
    states = [[np.zeros_like(p) for p in params] for _ in range(2)]
    args = dict(params=params, grads=grads, exp_avgs=states[0], exp_avg_sqs=states[1],
                max_exp_avg_sqs=None, steps=[1] * len(params), lr=1e-3, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled_weight_decay=False)
    args.update(kw)
    return args


def test_the_kernel_binding_rejects_shared_memory():
    buf = np.zeros(20, np.float32)
    p, g = buf[:10], np.ones(10, np.float32)
    with pytest.raises(ValueError, match="share memory"):
        _C.adam_step(**_adam_args([p], [g], exp_avgs=[buf[5:15]]))
    with pytest.raises(ValueError, match="share memory"):
        _C.adam_step(**_adam_args([p], [p]))
    two = [np.zeros(4, np.float32), np.zeros(4, np.float32)]
    with pytest.raises(ValueError, match="share memory"):
        _C.adam_step(**_adam_args(two, [np.ones(4, np.float32)] * 2,
                                  exp_avg_sqs=[two[0], np.zeros(4, np.float32)]))
    # gradients may be shared (read only)
    shared = np.ones(4, np.float32)
    _C.adam_step(**_adam_args(two, [shared, shared]))
    np.testing.assert_allclose(two[0], -1e-3 * np.ones(4), rtol=1e-5)


@pytest.mark.parametrize("change,error,match", [
    (dict(params=[np.zeros(3, np.float64)]), TypeError, r"params\[0\] must be float32"),
    (dict(params=[np.zeros((3, 2), np.float32).T]), ValueError, "C-contiguous"),
    (dict(grads=[np.ones(4, np.float32)]), ValueError,
     r"grads\[0\] must have the shape of params\[0\] \(3,\)"),
    (dict(grads=[]), ValueError, "must have 1 entries"),
    (dict(steps=[0]), ValueError, r"steps\[0\] must be >= 1"),
    (dict(steps=[1.0]), TypeError, "must be an int"),
    (dict(exp_avgs=None), ValueError, "lacks state buffer 0"),
    (dict(amsgrad=True), ValueError, "lacks state buffer 2"),
    (dict(params=np.zeros(3, np.float32)), TypeError, "'params' must be a list"),
    (dict(params=[[0.0, 1.0, 2.0]]), TypeError, r"params\[0\] must be a numpy.ndarray"),
    (dict(grads="abc"), TypeError, "'grads' must be a list"),
], ids=["dtype", "strided", "shape", "length", "step", "step-type", "missing-state", "amsgrad",
        "array", "not-an-array", "string"])
def test_the_kernel_binding_checks_its_arrays(change, error, match):
    p = np.zeros(3, np.float32)
    args = _adam_args([p], [np.ones(3, np.float32)])
    args.update(change)
    with pytest.raises(error, match=match):
        _C.adam_step(**args)


def test_a_read_only_parameter_is_refused():
    p = np.zeros(3, np.float32)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _C.adam_step(**_adam_args([p], [np.ones(3, np.float32)]))


# ================================================================ Keras names

@pytest.mark.parametrize("name,cls", [("sgd", optim.SGD), ("Adam", optim.Adam),
                                      ("ADAMW", optim.AdamW), ("rmsprop", optim.RMSprop),
                                      ("adagrad", optim.Adagrad)])
def test_get_resolves_keras_names_with_the_defaults(name, cls):
    params = params_of((2,))
    opt = optim.get(name, params)
    assert type(opt) is cls and opt.param_groups[0]["params"] == params
    assert opt.defaults == cls(params_of((1,))).defaults


def test_get_takes_classes_instances_and_factories():
    params = params_of((2,))
    adam = optim.Adam(params, lr=0.5)
    assert optim.get(adam) is adam
    assert type(optim.get(optim.RMSprop, params)) is optim.RMSprop
    made = optim.get(lambda p: optim.SGD(p, lr=0.3), params)
    assert made.param_groups[0]["lr"] == 0.3
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        optim.get("adamax", params)
    with pytest.raises(TypeError, match="identifier"):
        optim.get(3, params)
    with pytest.raises(TypeError, match="not an Optimizer"):
        optim.get(lambda p: None, params)


# ================================================================ the GPU path (fake device)

@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9)),
                                          ("Adagrad", dict(initial_accumulator_value=0.1)),
                                          ("RMSprop", dict(centered=True, momentum=0.5)),
                                          ("Adam", dict(amsgrad=True, weight_decay=0.1)),
                                          ("AdamW", {})])
def test_gpu_parameters_step_on_the_device_kernels(fake_gpu, name, options):
    cpu = params_of((3, 4), (5,))
    gpu = [p.to("cuda") for p in cpu]
    assert all(p.device == "cuda" for p in gpu)
    opt_cpu = getattr(optim, name)(cpu, **options)
    opt_gpu = getattr(optim, name)(gpu, **options)
    for s in range(4):
        set_grads(cpu, s)
        for p, q in zip(cpu, gpu):
            q.grad = p.grad.to("cuda")
        opt_cpu.step()
        opt_gpu.step()
    assert fake_gpu.calls[name.lower().replace("adamw", "adam") + "_step"] == 4
    for p, q in zip(cpu, gpu):
        np.testing.assert_array_equal(q.numpy(), p.numpy())
    sd = opt_gpu.state_dict()
    assert all(isinstance(v, (int, np.ndarray)) for s in sd["state"].values() for v in s.values())
    restored = getattr(optim, name)([q.to("cuda") for q in gpu], **options)
    restored.load_state_dict(sd)
    state = next(iter(restored.state.values()))
    assert all(fastnn.cuda.is_device_array(v) for k, v in state.items() if k != "step")


def test_a_cpu_gradient_on_a_gpu_parameter_is_a_value_error(fake_gpu):
    (p,) = params_of((3,))
    q = p.to("cuda")
    q.grad = fastnn.tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="on cuda has a gradient on cpu"):
        optim.SGD([q]).step()


# ================================================================ gradient clipping

def test_clip_grad_norm_scales_when_above_and_returns_the_norm():
    a, b = params_of((3, 4), (5,))
    set_grads([a, b], 0)
    ga, gb = a.grad.numpy().astype(np.float64), b.grad.numpy().astype(np.float64)
    total = math.sqrt((ga ** 2).sum() + (gb ** 2).sum())
    got = optim.clip_grad_norm([a, b], 1.0)
    assert isinstance(got, float) and abs(got - total) <= 1e-6 * total
    coef = 1.0 / (total + 1e-6)
    assert_within(a.grad.numpy(), ga * coef, 4 * EPS32 * np.abs(ga * coef))
    assert_within(b.grad.numpy(), gb * coef, 4 * EPS32 * np.abs(gb * coef))
    after = math.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in (a, b)))
    assert abs(after - 1.0) < 1e-5


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing_ones():
    a, b = params_of((3,), (2,))
    a.grad = fastnn.tensor(np.array([0.3, 0.0, -0.4], np.float32))
    assert optim.clip_grad_norm([a, b], max_norm=1.0) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_array_equal(a.grad.numpy(), np.array([0.3, 0.0, -0.4], np.float32))
    assert b.grad is None
    assert optim.clip_grad_norm([b], 1.0) == 0.0


def test_clip_grad_norm_other_norms():
    (a,) = params_of((4,))
    a.grad = fastnn.tensor(np.array([3.0, -4.0, 1.0, 0.0], np.float32))
    assert optim.clip_grad_norm(a, 10.0, norm_type=math.inf) == 4.0
    assert optim.clip_grad_norm(a, 10.0, norm_type=1) == pytest.approx(8.0)
    optim.clip_grad_norm(a, 2.0, norm_type=math.inf)
    np.testing.assert_allclose(a.grad.numpy(), np.array([3, -4, 1, 0]) * 2 / (4 + 1e-6),
                               rtol=1e-6)


def test_clip_grad_norm_of_a_nan_gradient():
    (a,) = params_of((2,))
    a.grad = fastnn.tensor(np.array([np.nan, 1.0], np.float32))
    with pytest.raises(RuntimeError, match="nan"):
        optim.clip_grad_norm(a, 1.0, error_if_nonfinite=True)
    assert math.isnan(optim.clip_grad_norm(a, 1.0))


def test_clip_grad_norm_arguments():
    (a,) = params_of((2,))
    with pytest.raises(ValueError, match="'max_norm'"):
        optim.clip_grad_norm(a, -1.0)
    with pytest.raises(ValueError, match="'norm_type'"):
        optim.clip_grad_norm(a, 1.0, norm_type=0)
    with pytest.raises(TypeError, match=r"params\[0\] must be a Tensor"):
        optim.clip_grad_norm([np.zeros(2)], 1.0)


def test_clip_grad_value_clamps_each_element():
    (a,) = params_of((4,))
    a.grad = fastnn.tensor(np.array([3.0, -4.0, 0.5, -0.25], np.float32))
    optim.clip_grad_value([a], 1.0)
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, -1.0, 0.5, -0.25])
    with pytest.raises(ValueError, match="'clip_value'"):
        optim.clip_grad_value([a], -1.0)


def test_clipping_gpu_gradients(fake_gpu):
    (a,) = params_of((3,))
    q = a.to("cuda")
    q.grad = fastnn.tensor(np.array([3.0, 0.0, -4.0], np.float32)).to("cuda")
    assert optim.clip_grad_norm([q], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(q.grad.numpy(), [0.6, 0.0, -0.8], rtol=1e-5)
    optim.clip_grad_value([q], 0.7)
    np.testing.assert_allclose(q.grad.numpy(), [0.6, 0.0, -0.7], rtol=1e-6)
