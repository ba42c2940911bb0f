"""How fastnn was built and what it runs on: build_info, the optional CUDA
module, the thread count and the public signatures the API promises."""
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn import _C


def run_python(code, **env_overrides):
    """Runs code in a fresh interpreter that imports this same fastnn; returns
    the JSON its last output line holds."""
    env = dict(os.environ, **env_overrides)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_root, env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------ build_info

def test_build_info_has_every_documented_key_with_its_type():
    info = fastnn.build_info()
    assert isinstance(info, dict)
    expected = {"version": str, "compiler": str, "openmp": bool, "threads": int, "isa": str,
                "cuda_built": bool, "gpu_found": bool}
    for key, kind in expected.items():
        assert key in info, f"build_info() lacks {key!r}"
        assert type(info[key]) is kind, f"build_info()[{key!r}] is {type(info[key]).__name__}"
    assert info["version"] and info["compiler"]


def test_build_info_reports_the_active_isa_and_thread_count():
    info = fastnn.build_info()
    assert info["isa"] in _C.supported_isas()
    assert info["isa"] == _C.get_isa()
    assert info["threads"] == fastnn.get_num_threads() >= 1


def test_build_info_returns_a_fresh_dict_each_call():
    info = fastnn.build_info()
    info["isa"] = "tampered"
    assert fastnn.build_info()["isa"] != "tampered"


def test_version_matches_build_info_and_installed_metadata():
    assert fastnn.__version__ == fastnn.build_info()["version"]
    try:
        dist = importlib.metadata.distribution("fastnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastnn is imported from a source tree, not installed")
    installed = os.path.realpath(str(dist.locate_file("fastnn/__init__.py")))
    if installed != os.path.realpath(fastnn.__file__):
        pytest.skip("the installed fastnn is not the one imported here")
    assert fastnn.__version__ == dist.version


def test_omp_num_threads_sets_the_default_thread_count():
    info = fastnn.build_info()
    if not info["openmp"]:
        assert info["threads"] == 1, "a serial build cannot run several threads"
    else:
        out = run_python("import json, fastnn; print(json.dumps(fastnn.get_num_threads()))",
                         OMP_NUM_THREADS="3")
        assert out == 3


# ------------------------------------------------------------ CUDA

def test_cuda_is_available_is_a_bool_matching_build_info():
    available = fastnn.cuda.is_available()
    assert type(available) is bool
    assert available == fastnn.build_info()["gpu_found"]
    assert fastnn.cuda.is_built() == fastnn.build_info()["cuda_built"]
    if not fastnn.build_info()["cuda_built"]:
        assert available is False, "a GPU cannot be found without the CUDA module"


def test_import_works_and_reports_no_gpu_when_none_is_visible():
    out = run_python(
        "import json, fastnn; "
        "print(json.dumps([fastnn.cuda.is_available(), fastnn.build_info()['gpu_found']]))",
        CUDA_VISIBLE_DEVICES="")
    assert out == [False, False]


# ------------------------------------------------------------ threads

def test_set_num_threads_round_trips_through_get_and_build_info():
    for n in [1, 3, 2, 1]:
        fastnn.set_num_threads(n)
        assert fastnn.get_num_threads() == n
        assert fastnn.build_info()["threads"] == n


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_fewer_than_one_with_value_error(bad):
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match=str(bad)):
        fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == before


@pytest.mark.parametrize("bad", ["2", 2.0, None, True], ids=["str", "float", "none", "bool"])
def test_set_num_threads_rejects_a_non_integer_with_type_error(bad):
    before = fastnn.get_num_threads()
    with pytest.raises(TypeError, match=type(bad).__name__):
        fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == before


def test_omp_num_threads_one_gives_one_thread():
    out = run_python(
        "import json, fastnn; "
        "print(json.dumps([fastnn.get_num_threads(), fastnn.build_info()['threads']]))",
        OMP_NUM_THREADS="1")
    assert out == [1, 1]


# ------------------------------------------------------------ public API

def test_gemm_signature_is_the_documented_one():
    params = inspect.signature(fastnn.kernels.gemm).parameters
    assert list(params) == ["a", "b", "trans_a", "trans_b", "alpha", "beta", "c"]
    keyword_only = {name: p.default for name, p in params.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword_only == {"trans_a": False, "trans_b": False, "alpha": 1.0, "beta": 0.0,
                            "c": None}


def test_top_level_exposes_the_runtime_functions():
    for name in ["build_info", "set_num_threads", "get_num_threads", "cuda", "kernels"]:
        assert hasattr(fastnn, name), f"fastnn.{name} is missing"
