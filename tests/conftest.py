"""Shared fixtures and helpers: every SIMD path this build can run here, thread
counts, a guard that puts the process-wide settings back after each test,
and a fresh interpreter running this same fastnn."""
import contextlib
import json
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn import _C

# Every instruction set fastnn knows; the ones this build cannot run here are
# skipped. What counts is supported_isas(): a test build with
# FASTNN_EMULATE_AVX512 offers 'avx512' (compiled for AVX2) on a CPU without
# AVX-512, so no test may take 'avx512' to mean the CPU has it.
KNOWN_ISAS = ("generic", "avx2", "avx512")
SUPPORTED_ISAS = tuple(_C.supported_isas())
BEST_ISA = SUPPORTED_ISAS[-1]


def isa_params():
    """pytest.param for every known ISA, skipped with a reason where unsupported."""
    names = list(KNOWN_ISAS) + [n for n in SUPPORTED_ISAS if n not in KNOWN_ISAS]
    return [
        pytest.param(name, id=name, marks=pytest.mark.skipif(
            name not in SUPPORTED_ISAS,
            reason=f"this build cannot run the {name} path here (supported: "
                   f"{list(SUPPORTED_ISAS)})"))
        for name in names
    ]


@contextlib.contextmanager
def forced_isa(name):
    old = _C.get_isa()
    _C.set_isa(name)
    try:
        yield name
    finally:
        _C.set_isa(old)


@contextlib.contextmanager
def num_threads(n):
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        yield n
    finally:
        fastnn.set_num_threads(old)


def run_python(code, *args, timeout=120, check=True, **env_overrides):
    """Runs `python -c code *args` in a fresh interpreter that imports this
    same fastnn, with env_overrides added to the environment; returns the
    CompletedProcess (text output). With check, a non-zero exit fails the
    test with the child's stderr. A child still running after `timeout`
    seconds is killed and fails the test, with what it had printed."""
    env = dict(os.environ, **env_overrides)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_root, env.get("PYTHONPATH", "")] if p)
    try:
        proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out, err = (x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
                    for x in (e.stdout, e.stderr))
        pytest.fail(f"the child interpreter did not finish in {timeout} s (killed); "
                    f"stdout: {out!r}, stderr: {err!r}")
    if check:
        assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{proc.stderr}"
    return proc


def last_json_line(proc):
    """The value the child printed as JSON on its last line of output."""
    lines = proc.stdout.strip().splitlines()
    assert lines, f"the child printed nothing; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


@pytest.fixture(autouse=True)
def _restore_runtime_settings():
    """No test leaks a forced ISA or thread count into the next."""
    isa, threads = _C.get_isa(), fastnn.get_num_threads()
    yield
    _C.set_isa(isa)
    fastnn.set_num_threads(threads)


@pytest.fixture(params=isa_params())
def isa(request):
    """Runs the test with this SIMD path forced, restoring the previous one."""
    with forced_isa(request.param):
        yield request.param


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}thr")
def threads(request):
    """Runs the test at this thread count, restoring the previous one."""
    with num_threads(request.param):
        yield request.param


@pytest.fixture
def fake_gpu(monkeypatch):
    """fastnn.cuda backed by tests/fake_cuda.py (NumPy), for the Python GPU
    paths on a machine without a GPU. Yields the fake module."""
    import fake_cuda
    import fastnn.cuda as cuda_module
    fake = fake_cuda.FakeCudaModule()
    monkeypatch.setattr(cuda_module, "_C_cuda", fake)
    monkeypatch.setattr(cuda_module, "DeviceArray", fake_cuda.FakeDeviceArray)
    monkeypatch.setattr(cuda_module, "_device_count", 1)
    yield fake
