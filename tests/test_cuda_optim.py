"""The optimizer kernels of fastnn._C_cuda (csrc/cuda/optim.cu) against the
CPU kernels of fastnn._C and the float64 references, and fastnn.optim on
GPU tensors.

Both devices evaluate the same formulas (fastnn/optim_math.h) with IEEE
division and square roots; they differ only where one contracts a
multiply-add that the other rounds twice, so the trajectories agree within
the error bound of test_optim.py, not bit for bit.

Every test needs a GPU and is skipped without one.
"""
import numpy as np
import pytest

import fastnn
from fastnn import cuda, optim
from reference.checks import assert_within
from test_optim import CASES, _case_params, run_trajectory

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU available")


@pytest.mark.parametrize("name,options", _case_params())
def test_gpu_trajectory_matches_the_reference(name, options):
    shapes = [(1,), (7,), (3, 11), (70_001,)]  # the last spans many blocks
    cpu_got, want, bounds = run_trajectory(name, options, shapes, steps=20)
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = np.random.default_rng(1)
    params = [fastnn.tensor(p.copy(), requires_grad=True).to("cuda") for p in start]
    opt = getattr(optim, name)(params, **options)
    for _ in range(20):
        for p, s in zip(params, shapes):
            p.grad = fastnn.tensor(grads.standard_normal(s).astype(np.float32)).to("cuda")
        opt.step()
    for i, p in enumerate(params):
        assert p.device == "cuda"
        assert_within(p.numpy(), want[i], bounds[i], f"{name} tensor {i} on the GPU",
                      np.float32)
        assert_within(p.numpy(), cpu_got[i], 2 * bounds[i], f"{name} tensor {i}, GPU vs CPU")


def test_gpu_state_lives_on_the_device_and_round_trips():
    (p,) = [fastnn.tensor(np.ones(5, np.float32), requires_grad=True).to("cuda")]
    opt = optim.Adam([p], amsgrad=True)
    p.grad = fastnn.tensor(np.full(5, 0.5, np.float32)).to("cuda")
    opt.step()
    state = opt.state[p]
    assert all(cuda.is_device_array(state[k]) for k in ("exp_avg", "exp_avg_sq",
                                                        "max_exp_avg_sq"))
    saved = opt.state_dict()
    np.testing.assert_allclose(saved["state"][0]["exp_avg"], np.full(5, 0.05), rtol=1e-6)
    q = fastnn.tensor(p.numpy(), requires_grad=True).to("cuda")
    other = optim.Adam([q], amsgrad=True)
    other.load_state_dict(saved)
    for t in (p, q):
        t.grad = fastnn.tensor(np.full(5, -0.25, np.float32)).to("cuda")
    opt.step()
    other.step()
    np.testing.assert_array_equal(q.numpy(), p.numpy())


def test_gpu_kernel_binding_checks_its_arrays():
    G = cuda._C_cuda
    p = G.DeviceArray.from_numpy(np.zeros(3, np.float32))
    g = G.DeviceArray.from_numpy(np.ones(4, np.float32))
    m = G.DeviceArray.from_numpy(np.zeros(3, np.float32))
    v = G.DeviceArray.from_numpy(np.zeros(3, np.float32))
    args = (1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    with pytest.raises(ValueError, match="shape"):
        G.adam_step([p], [g], [m], [v], None, [1], *args)
    with pytest.raises(ValueError, match="appears twice"):
        G.adam_step([p], [m], [p], [v], None, [1], *args)
    with pytest.raises(TypeError, match="DeviceArray"):
        G.adam_step([np.zeros(3, np.float32)], [m], [m], [v], None, [1], *args)
