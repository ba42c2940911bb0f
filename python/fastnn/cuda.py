"""The optional CUDA backend. Importing fastnn never needs a GPU: without the
module or a device, is_available() is False and nothing here is used.

Arrays on the GPU are ``DeviceArray`` objects (float32, C order)::

    a = fastnn.cuda.to_device(np.ones((64, 32)))
    c = fastnn.kernels.gemm(a, a, trans_b=True)   # runs on the GPU
    c.numpy()                                      # back to the host

Work is queued asynchronously; ``.numpy()`` waits for it, ``synchronize()``
waits explicitly (for timing).
"""
import numpy as np

from ._checks import as_float32, real

try:
    from . import _C_cuda
except ImportError:  # built without CUDA
    _C_cuda = None

DeviceArray = _C_cuda.DeviceArray if _C_cuda is not None else None

__all__ = ["DeviceArray", "device_count", "gemm", "get_device_properties", "is_available",
           "is_built", "is_device_array", "synchronize", "to_device", "to_host"]


def is_built():
    """True when this fastnn was built with its CUDA module."""
    return _C_cuda is not None


_device_count = None  # looked up once: the CUDA runtime fixes it for the process


def device_count():
    """Number of usable GPUs: 0 without the CUDA module, a driver or a device."""
    global _device_count
    if _device_count is None:
        _device_count = _C_cuda.device_count() if _C_cuda is not None else 0
    return _device_count


def is_available():
    """True when the CUDA module is built and a usable GPU is present."""
    return device_count() > 0


def is_device_array(x):
    """True for an array that lives on the GPU."""
    return DeviceArray is not None and isinstance(x, DeviceArray)


def _require_gpu(fn):
    if _C_cuda is None:
        raise RuntimeError(
            f"fastnn.cuda.{fn}: this fastnn was built without CUDA (reinstall with nvcc on the "
            "PATH, or FASTNN_CUDA=ON to make a missing nvcc an error)")
    if device_count() == 0:
        raise RuntimeError(f"fastnn.cuda.{fn}: no CUDA GPU is available ({_C_cuda.init_error()})")


def get_device_properties(device=0):
    """A dict with the GPU's name, compute_capability, multiprocessors, total_memory."""
    _require_gpu("get_device_properties")
    return _C_cuda.device_info(device)


def synchronize():
    """Waits until all queued GPU work is done; raises the errors it reports."""
    _require_gpu("synchronize")
    _C_cuda.synchronize()


def to_device(x):
    """A float32, C-order copy of ``x`` (an array or nested list of numbers) on the GPU.

    A DeviceArray is returned as it is.
    """
    if is_device_array(x):
        return x
    _require_gpu("to_device")
    # C order (and native byte order, for a '>f4' input) is left to from_numpy
    return DeviceArray.from_numpy(as_float32(x, "x", "to_device"))


def to_host(x):
    """A NumPy copy of a DeviceArray (a NumPy array is returned as it is)."""
    if is_device_array(x):
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"to_host: argument 'x' must be a DeviceArray, got {type(x).__name__}")


def _device_matrix(x, name, fn, on_gpu):
    """x as a 2-D DeviceArray; on_gpu names the operands that are on the GPU."""
    if is_device_array(x):
        if x.ndim != 2:
            raise ValueError(f"{fn}: argument '{name}' must be 2-D, got shape {x.shape}")
        return x
    got = "a NumPy array on the host" if isinstance(x, np.ndarray) else type(x).__name__
    if not on_gpu:
        raise TypeError(f"{fn}: argument '{name}' must be a DeviceArray, got {got} "
                        "(fastnn.kernels.gemm takes host arrays)")
    others = " and ".join(f"'{k}'" for k in on_gpu)
    raise TypeError(
        f"{fn}: argument '{name}' is {got} but {others} {'is' if len(on_gpu) == 1 else 'are'} "
        f"on the GPU: move it with fastnn.cuda.to_device({name}), or bring the others back "
        "with .numpy()")


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """C = alpha * op(a) @ op(b) + beta * C on the GPU, op(x) = x.T when trans_x.

    ``a``, ``b`` and ``c`` (when given) are 2-D DeviceArrays. With ``c`` (shape
    (M, N)) the result is written into it and it is returned; otherwise a new
    DeviceArray is returned and C counts as zero. When beta is 0, C is never
    read. Asynchronous: the call returns once the kernel is queued.
    """
    fn = "gemm"
    _require_gpu(fn)
    on_gpu = [k for k, v in (("a", a), ("b", b), ("c", c)) if is_device_array(v)]
    a = _device_matrix(a, "a", fn, on_gpu)
    b = _device_matrix(b, "b", fn, on_gpu)
    alpha = real(alpha, "alpha", fn)
    beta = real(beta, "beta", fn)
    trans_a, trans_b = bool(trans_a), bool(trans_b)
    m, k = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if k != kb:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) has shape {(m, k)} and op(b) has shape "
            f"{(kb, n)}")
    if c is not None:
        c = _device_matrix(c, "c", fn, on_gpu)
        if c.shape != (m, n):
            raise ValueError(f"gemm: argument 'c' must have shape {(m, n)}, got {c.shape}")
    return _C_cuda.gemm(a, b, trans_a, trans_b, alpha, beta, c)
