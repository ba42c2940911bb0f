"""fastnn.distributed: the one-process world in this interpreter, and
2-rank jobs (`mpiexec -n 2 --oversubscribe`, scripts in tests/mpi/) compared
with one process running the same script. The MPI tests are skipped only
where mpiexec or mpi4py is missing (`pip install ".[distributed]"`)."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import distributed, nn
from fastnn import functional as F
from fastnn.optim import SGD, Adam

from conftest import run_python

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi")


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return shutil.which("mpiexec", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec or mpi4py is not installed "
                                                       "(pip install '.[distributed]')")


def _env():
    # CI runs as root, which Open MPI refuses unless told
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_root, env.get("PYTHONPATH", "")] if p)
    return env


def run_script(script, *args, ranks=2, timeout=120, check=True):
    """Runs tests/mpi/<script> on `ranks` ranks (ranks=1: plainly, without
    mpiexec); a job still running after `timeout` seconds is killed and
    fails the test."""
    cmd = [sys.executable, os.path.join(SCRIPTS, script), *map(str, args)]
    if ranks > 1:
        cmd = [MPIEXEC, "-n", str(ranks), "--oversubscribe"] + cmd
    try:
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{script} on {ranks} ranks did not end in {timeout} s (killed): "
                    f"{e.stdout!r} {e.stderr!r}")
    if check:
        assert proc.returncode == 0, f"{script} exited with {proc.returncode}:\n{proc.stderr}"
    return proc


def _assert_same_weights(one, two, atol):
    a, b = np.load(one), np.load(two)
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=atol, err_msg=name)


# ---------------------------------------------------------------- 2 ranks
@needs_mpi
@pytest.mark.parametrize("kind", ["cnn", "flow", "lstm"])
def test_fit_on_two_ranks_equals_one_process_with_the_same_global_batch(kind, tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    run_script("fit_same_as_one_process.py", kind, one, ranks=1)
    run_script("fit_same_as_one_process.py", kind, two, ranks=2)
    _assert_same_weights(one, two, atol=2e-5)
    h1 = json.loads((tmp_path / "one.npz.json").read_text())
    h2 = json.loads((tmp_path / "two.npz.json").read_text())
    names = ["accuracy", "loss"] + (["precision"] if kind == "lstm" else [])
    assert sorted(h1) == sorted(names + [f"val_{k}" for k in names]) == sorted(h2)
    for key in h1:  # metrics summed over the ranks' rows: the one-process values
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5, atol=1e-6, err_msg=key)


@needs_mpi
def test_distributed_optimizer_on_half_batches_equals_one_process_on_whole(tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    run_script("optimizer_loop.py", one, ranks=1)
    run_script("optimizer_loop.py", two, ranks=2)
    _assert_same_weights(one, two, atol=2e-6)


@needs_mpi
def test_collectives_on_two_ranks_and_a_shape_mismatch_raises_on_both():
    proc = run_script("collectives.py", ranks=2, timeout=60)
    assert sorted(proc.stdout.split("\n")[:2]) == ["rank 0 ok", "rank 1 ok"]


@needs_mpi
def test_a_rank_that_raises_ends_the_job_with_a_nonzero_status(tmp_path):
    start = time.monotonic()
    proc = run_script("failing_rank.py", ranks=2, timeout=60, check=False)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert "fastnn.distributed: rank 1 failed: RuntimeError: boom on purpose" in proc.stderr


@needs_mpi
def test_only_rank_0_prints_progress_and_writes_files_and_ranks_stop_together(tmp_path):
    proc = run_script("files_on_rank0.py", tmp_path, ranks=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-0.npz", "log-0.csv", "model-0.npz"]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("Epoch 1/30") for line in lines) == 1
    ends = [json.loads(line) for line in lines if line.startswith("{")]
    # EarlyStopping stopped both after the same epoch
    assert sorted((e["rank"], e["epochs"]) for e in ends) == [(0, 2), (1, 2)]
    for e in ends:  # each rank's kernels take its share of the cores
        assert 1 <= e["threads"] <= max(1, (os.cpu_count() or 1) // 2)
    assert len((tmp_path / "log-0.csv").read_text().splitlines()) == 3  # header, 2 epochs


def test_a_save_before_fit_or_init_is_written_by_rank_0_alone(tmp_path):
    run_script("save_before_fit.py", tmp_path, ranks=2)
    assert sorted(os.listdir(tmp_path)) == ["model-0.npz", "weights-0.npz"]


# ---------------------------------------------------------------- one process
def test_without_mpiexec_the_world_is_this_process_alone():
    distributed.init()
    distributed.init()  # idempotent
    assert distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    distributed.barrier()


def test_allreduce_in_a_world_of_one_returns_a_copy_of_the_same_kind():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    for op in ("mean", "sum", "max", "min"):
        r = distributed.allreduce(a, op=op)
        assert isinstance(r, np.ndarray) and r.dtype == a.dtype
        np.testing.assert_array_equal(r, a)
        assert not np.shares_memory(r, a)
    t = distributed.allreduce(fastnn.tensor(a))
    assert isinstance(t, fastnn.Tensor)
    np.testing.assert_array_equal(t.numpy(), a)
    assert distributed.allreduce(3, op="sum") == 3
    assert distributed.allreduce(2.5) == 2.5


def test_allreduce_and_broadcast_reject_bad_arguments():
    with pytest.raises(ValueError, match="'op'"):
        distributed.allreduce(np.ones(2), op="prod")
    with pytest.raises(TypeError, match="floating-point"):
        distributed.allreduce(np.arange(3), op="mean")
    with pytest.raises(TypeError, match="'x'"):
        distributed.allreduce([1.0, 2.0])
    with pytest.raises(TypeError, match="numbers"):
        distributed.allreduce(np.array([True]), op="sum")
    with pytest.raises(ValueError, match=r"'root' must be in \[0, 1\)"):
        distributed.broadcast(np.ones(2), root=1)
    with pytest.raises(TypeError, match="'root'"):
        distributed.broadcast(np.ones(2), root=True)
    with pytest.raises(TypeError, match="'params'"):
        distributed.broadcast_parameters(np.ones(3))
    with pytest.raises(TypeError, match=r"params\[1\]"):
        distributed.broadcast_parameters([fastnn.tensor(np.ones(2)), np.ones(2)])


def test_broadcast_in_a_world_of_one_keeps_the_values():
    a = np.arange(4.0)
    np.testing.assert_array_equal(distributed.broadcast(a), a)
    assert distributed.broadcast({"seed": 3}) == {"seed": 3}
    model = nn.Sequential([nn.Dense(3)])
    model(np.ones((1, 2), np.float32))
    before = model.state_dict()
    distributed.broadcast_parameters(model)
    distributed.broadcast_parameters(dict(model.named_parameters()))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def _model_and_grads(seed):
    fastnn.manual_seed(seed)
    model = nn.Sequential([nn.Dense(5, activation="tanh"), nn.Dense(2)])
    x = np.random.default_rng(seed).standard_normal((6, 3)).astype(np.float32)
    y = np.arange(6) % 2

    def loss():
        return F.cross_entropy(model(fastnn.tensor(x)), fastnn.tensor(y))
    loss()  # builds the weights from the seed
    return model, loss


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1, momentum=0.5),
                                  lambda p: Adam(p, lr=0.01)])
def test_distributed_optimizer_in_a_world_of_one_is_the_wrapped_optimizer(make):
    plain_model, plain_loss = _model_and_grads(0)
    dist_model, dist_loss = _model_and_grads(0)
    plain = make(plain_model.parameters())
    wrapped = distributed.DistributedOptimizer(make(dist_model.parameters()))
    for _ in range(3):
        plain.zero_grad()
        plain_loss().backward()
        plain.step()
        wrapped.zero_grad()
        dist_loss().backward()
        wrapped.step(weight=3)
    for k, v in plain_model.state_dict().items():
        np.testing.assert_array_equal(dist_model.state_dict()[k], v)
    assert wrapped.param_groups is wrapped.optimizer.param_groups
    state = wrapped.state_dict()
    assert state.keys() == plain.state_dict().keys()
    wrapped.load_state_dict(state)
    loss = wrapped.step(closure=lambda: dist_loss().backward())
    assert loss is None  # the closure's value, here None


def test_distributed_optimizer_rejects_bad_arguments():
    model, _ = _model_and_grads(0)
    with pytest.raises(TypeError, match="'optimizer'"):
        distributed.DistributedOptimizer(model.parameters())
    with pytest.raises(ValueError, match="'bucket_bytes'"):
        distributed.DistributedOptimizer(SGD(model.parameters()), bucket_bytes=0)
    with pytest.raises(TypeError, match="'bucket_bytes'"):
        distributed.DistributedOptimizer(SGD(model.parameters()), bucket_bytes=1.5)
    opt = distributed.DistributedOptimizer(SGD(model.parameters()))
    for bad in (-1, float("nan"), float("inf"), "2"):
        with pytest.raises(ValueError, match="'weight'"):
            opt.step(weight=bad)


def test_fastnn_imports_and_trains_without_mpi4py_even_under_a_launcher():
    code = (
        "import sys, warnings; sys.modules['mpi4py'] = None\n"
        "import numpy as np, fastnn\n"
        "from fastnn import distributed, nn\n"
        "from fastnn.models import Sequential\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    distributed.init()\n"
        "assert any('mpi4py is not installed' in str(m.message) for m in w), w\n"
        "assert distributed.world_size() == 1\n"
        "m = Sequential([nn.Dense(2, activation='softmax')])\n"
        "m.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')\n"
        "m.fit(np.ones((4, 3), np.float32), np.array([0, 1, 0, 1]), verbose=0)\n"
        "print('ok')\n")
    proc = run_python(code, OMPI_COMM_WORLD_SIZE="2")
    assert proc.stdout.strip().endswith("ok")


def test_fit_joins_the_world_by_itself_unless_told_not_to():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import warnings; warnings.simplefilter('ignore')\n"
        "import numpy as np\n"
        "from fastnn import distributed, nn\n"
        "from fastnn.models import Sequential\n"
        "m = Sequential([nn.Dense(2, activation='softmax')])\n"
        "m.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')\n"
        "m.fit(np.ones((4, 3), np.float32), np.array([0, 1, 0, 1]), verbose=0)\n"
        "print(distributed.is_initialized())\n")
    launched = {"OMPI_COMM_WORLD_SIZE": "2"}
    assert run_python(code, **launched).stdout.split() == ["True"]
    assert run_python(code, FASTNN_DISTRIBUTED="0", **launched).stdout.split() == ["False"]
