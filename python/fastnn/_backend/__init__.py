"""Array operations per device, so that each op in fastnn.functional is written
once: ``CPU`` (cpu.py) works on NumPy arrays (float32 on the C++ kernels of
``_C``, other dtypes in NumPy), ``GPU`` (gpu.py) on ``DeviceArray``s through
``_C_cuda`` (float32 only). ``of(array)`` picks one. Python numbers may
stand for either side of a binary op; results are new arrays (NumPy views
where NumPy makes them). Every CPU/GPU branch of the package lives here."""
import numpy as np

from .. import _C
from . import gpu as _gpu
from .cpu import CPU
from .gpu import GPU

__all__ = ["CPU", "GPU", "get_num_threads", "of", "set_num_threads"]

_ndarray = np.ndarray

# kernels that take the same arguments on both devices: conv and pooling
# (window as _checks.conv_window / pool_window give it), the recurrent
# sequence kernels, and axpy (y += alpha * x in place)
_SAME_SIGNATURE = ("conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward",
                   "avg_pool2d", "avg_pool2d_backward", "rnn_forward", "rnn_backward", "axpy")
for _name in _SAME_SIGNATURE:
    setattr(CPU, _name, staticmethod(getattr(_C, _name)))
    setattr(GPU, _name, staticmethod(_gpu.call(_name)))
CPU.affine_warp = staticmethod(_C.affine_warp)  # augmentation runs on the host only
# a convolution with a ReLU and the max pool after it, forward and backward in one pass
# each (functional.conv)
CPU.conv2d_pool_backward = staticmethod(_C._conv2d_pool_backward)
CPU.conv2d_relu_max_pool = staticmethod(_C._conv2d_relu_max_pool)


def of(a):
    """The namespace for array a (a NumPy scalar, which ufuncs return for 0-d
    inputs, counts as a CPU array)."""
    return CPU if type(a) is _ndarray or isinstance(a, np.generic) else GPU


def set_num_threads(n):
    """Sets how many threads the CPU kernels use (OMP_NUM_THREADS sets the default)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: argument 'n' must be an int, got {type(n).__name__}")
    if not 1 <= n <= _C.max_threads():
        raise ValueError(
            f"set_num_threads: argument 'n' must be in [1, {_C.max_threads()}], got {n}")
    _C.set_num_threads(n)


def get_num_threads():
    """The number of threads the CPU kernels use."""
    return _C.get_num_threads()
