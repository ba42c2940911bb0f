"""fastnn: deep learning for Python on hand-written C++ (and CUDA) kernels."""
import os as _os

from . import _C

# Large NumPy arrays are otherwise returned to the kernel when freed and
# page-faulted back in on the next step (see csrc/fastnn/runtime.h);
# FASTNN_KEEP_FREED_MEMORY=0 leaves the C library's malloc as it was.
_malloc_tuned = _os.environ.get("FASTNN_KEEP_FREED_MEMORY", "1") != "0" and _C.keep_freed_memory()
from . import cuda
from . import kernels
from ._random import initial_seed, manual_seed
from .autograd import enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor, tensor
from . import functional
from . import nn
from . import losses, metrics, optim, regularizers
from . import callbacks, data, datasets, models
from .functional import concatenate, stack
from ._backend import get_num_threads, set_num_threads

__version__ = _C.build_info()["version"]


def __getattr__(name):
    # imported on first use: ``import fastnn as tf; tf.keras...``, ``fastnn.explain``
    if name in ("explain", "keras"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_info():
    """How this fastnn was built and what it runs on, as a dict."""
    info = dict(_C.build_info())
    info["cuda_built"] = cuda.is_built()
    info["gpu_found"] = cuda.is_available()
    info["malloc_keeps_freed_memory"] = _malloc_tuned
    return info


__all__ = ["Tensor", "build_info", "callbacks", "concatenate", "cuda", "data", "datasets",
           "enable_grad", "functional", "get_num_threads", "initial_seed", "is_grad_enabled",
           "kernels", "losses", "manual_seed", "metrics", "models", "nn", "no_grad", "optim",
           "regularizers", "set_num_threads", "stack", "tensor"]
