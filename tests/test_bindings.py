"""The two compiled modules mirror each other: every op that _C and _C_cuda
both have takes the same arguments under the same names, and the fake GPU
module of the tests (tests/fake_cuda.py) offers every kernel op of _C_cuda
that the Python layer may call."""
import re

import pytest

from fastnn import _C, cuda

# _C_cuda's ops that _C leaves to NumPy, and its device management
GPU_ONLY = {"DeviceArray", "assign", "binary", "broadcast_to", "copy", "current_device",
            "device_count", "device_info", "fill", "init_error", "max", "permute", "reshape",
            "scalar", "set_device", "sum", "synchronize", "unary", "unary_backward"}
# _C's tools with no GPU counterpart: tests' references, runtime settings, augmentation,
# the convolution's algorithm plan
CPU_ONLY_PATTERN = re.compile(r"_reference$|^_|isa|threads|gflops|keep_freed_memory|build_info|"
                              r"affine_warp|_plan$")


def parameters(fn):
    """The parameter names of a pybind11 function, from its signature line."""
    line = fn.__doc__.strip().split("\n")[0]
    args = line[line.index("(") + 1:line.rindex(") ->")]
    return [a.split(":")[0].strip() for a in re.split(r",\s*(?![^\[]*\])", args) if a.strip()]


def public_ops(module):
    return {n for n in dir(module) if not n.startswith("__")}


def check_mirror(gpu_module):
    cpu_ops = {n for n in public_ops(_C) if not CPU_ONLY_PATTERN.search(n)}
    gpu_ops = public_ops(gpu_module) - GPU_ONLY
    assert cpu_ops == gpu_ops, (f"only in _C: {sorted(cpu_ops - gpu_ops)}, only in _C_cuda: "
                                f"{sorted(gpu_ops - cpu_ops)}")
    for name in sorted(cpu_ops):
        assert parameters(getattr(_C, name)) == parameters(getattr(gpu_module, name)), name


def test_signature_parser_reads_the_flags_with_their_defaults():
    params = parameters(_C.rnn_backward)
    assert params[:2] == ["cell", "x"] and params[-6:] == [
        "need_dx", "need_dh0", "need_dc0", "need_dw_x", "need_dw_h", "need_db"]
    assert parameters(_C.leaky_relu) == ["x", "negative_slope"]


@pytest.mark.skipif(not cuda.is_built(), reason="fastnn was built without its CUDA module")
def test_cuda_module_mirrors_the_cpu_module():
    check_mirror(cuda._C_cuda)


def test_fake_cuda_module_offers_every_kernel_op():
    import fake_cuda
    fake = fake_cuda.FakeCudaModule()
    cpu_ops = {n for n in public_ops(_C) if not CPU_ONLY_PATTERN.search(n)}
    missing = [n for n in sorted(cpu_ops) if not hasattr(fake, n)]
    assert not missing, f"tests/fake_cuda.py lacks {missing}"


def stub_parameters(path):
    """{function: parameter names} of a .pyi file ('*' where keyword-only begin)."""
    import ast
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            out[node.name] = [p.arg for p in a.args] + (["*"] if a.kwonlyargs else []) + [
                p.arg for p in a.kwonlyargs]
    return out


def test_stub_of_the_cpu_module_lists_every_op_with_its_parameters():
    """python/fastnn/_C.pyi (shipped with py.typed) stays in step with _C."""
    import pathlib

    import fastnn
    package = pathlib.Path(fastnn.__file__).parent
    assert (package / "py.typed").exists()
    stub = stub_parameters(package / "_C.pyi")
    ops = {n for n in public_ops(_C)}
    assert set(stub) == ops, (f"missing in _C.pyi: {sorted(ops - set(stub))}, "
                              f"not in _C: {sorted(set(stub) - ops)}")
    for name in sorted(ops):
        assert stub[name] == parameters(getattr(_C, name)), name


def test_stub_of_the_cuda_module_mirrors_the_cpu_stub():
    import pathlib

    import fastnn
    package = pathlib.Path(fastnn.__file__).parent
    cpu, gpu = stub_parameters(package / "_C.pyi"), stub_parameters(package / "_C_cuda.pyi")
    for name in sorted(set(cpu) & set(gpu)):
        assert gpu[name] == cpu[name], name
    if cuda.is_built():
        assert set(gpu) == {n for n in public_ops(cuda._C_cuda) if n != "DeviceArray"}
