"""How fastnn was built and what it runs on: build_info, the optional CUDA
module, the thread count and the public signatures the API promises."""
import importlib.metadata
import inspect
import os

import pytest

import fastnn
from conftest import last_json_line, run_python
from fastnn import _C


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


def test_build_info_optional_keys_have_their_types_when_present():
    # 'isa_emulated' is in builds that know FASTNN_EMULATE_AVX512 (a test
    # build: the avx512 kernels compiled for AVX2); 'isa_best' is the best
    # path this build can run here.
    info = fastnn.build_info()
    optional = {"isa_best": str, "isa_emulated": bool}
    for key, kind in optional.items():
        if key in info:
            assert type(info[key]) is kind, f"build_info()[{key!r}] is {type(info[key]).__name__}"
    if "isa_best" in info:
        assert info["isa_best"] == _C.supported_isas()[-1]
    if info.get("isa_emulated"):
        assert "avx512" in _C.supported_isas(), "an emulating build offers the avx512 path"


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
        proc = run_python("import json, fastnn; print(json.dumps(fastnn.get_num_threads()))",
                          OMP_NUM_THREADS="3")
        assert last_json_line(proc) == 3


# ------------------------------------------------------------ CUDA

def test_cuda_is_available_is_a_bool_matching_build_info():
    available = fastnn.cuda.is_available()
    assert type(available) is bool
    assert available == fastnn.build_info()["gpu_found"]
    assert fastnn.cuda.is_built() == fastnn.build_info()["cuda_built"]
    if not fastnn.build_info()["cuda_built"]:
        assert available is False, "a GPU cannot be found without the CUDA module"


def test_import_works_and_reports_no_gpu_when_none_is_visible():
    proc = run_python(
        "import json, fastnn; "
        "print(json.dumps([fastnn.cuda.is_available(), fastnn.build_info()['gpu_found']]))",
        CUDA_VISIBLE_DEVICES="")
    assert last_json_line(proc) == [False, False]


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


def test_max_threads_is_an_int_cap_at_or_above_the_current_count():
    cap = _C.max_threads()
    assert type(cap) is int
    assert cap >= fastnn.get_num_threads()
    if fastnn.build_info()["openmp"] and "OMP_THREAD_LIMIT" not in os.environ:
        assert cap >= 16


def test_set_num_threads_accepts_the_cap_itself():
    cap = _C.max_threads()
    fastnn.set_num_threads(cap)
    assert fastnn.get_num_threads() == cap
    assert fastnn.build_info()["threads"] == cap


@pytest.mark.parametrize("over", [1, 1000, 2**31, 10**30],
                         ids=["cap+1", "cap+1000", "cap+2^31", "cap+10^30"])
def test_set_num_threads_above_the_cap_raises_value_error_naming_n(over):
    before = fastnn.get_num_threads()
    bad = _C.max_threads() + over
    with pytest.raises(ValueError, match=r"'n'"):
        fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == before


def test_the_binding_itself_rejects_a_thread_count_above_the_cap():
    before = fastnn.get_num_threads()
    with pytest.raises(ValueError, match=r"'n'"):
        _C.set_num_threads(_C.max_threads() + 1)
    assert fastnn.get_num_threads() == before


def test_omp_num_threads_one_gives_one_thread():
    proc = run_python(
        "import json, fastnn; "
        "print(json.dumps([fastnn.get_num_threads(), fastnn.build_info()['threads']]))",
        OMP_NUM_THREADS="1")
    assert last_json_line(proc) == [1, 1]


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
