"""Shared fixtures: every SIMD path this CPU can run, thread counts, and a
guard that puts the process-wide settings back after each test."""
import contextlib

import pytest

import fastnn
from fastnn import _C

# Every instruction set fastnn knows; the ones this CPU cannot run are skipped.
KNOWN_ISAS = ("generic", "avx2", "avx512")
SUPPORTED_ISAS = tuple(_C.supported_isas())
BEST_ISA = SUPPORTED_ISAS[-1]


def isa_params():
    """pytest.param for every known ISA, skipped with a reason where unsupported."""
    names = list(KNOWN_ISAS) + [n for n in SUPPORTED_ISAS if n not in KNOWN_ISAS]
    return [
        pytest.param(name, id=name, marks=pytest.mark.skipif(
            name not in SUPPORTED_ISAS,
            reason=f"this CPU cannot run the {name} path (supported: {list(SUPPORTED_ISAS)})"))
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
