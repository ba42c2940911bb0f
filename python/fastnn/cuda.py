"""The optional CUDA backend. Importing fastnn never needs a GPU: without the
module or a device, is_available() is False and nothing here is used."""
try:
    from . import _C_cuda
except ImportError:  # built without CUDA
    _C_cuda = None


def is_built():
    """True when this fastnn was built with its CUDA module."""
    return _C_cuda is not None


def is_available():
    """True when the CUDA module is built and a usable GPU is present."""
    return _C_cuda is not None and _C_cuda.device_count() > 0


def is_device_array(x):
    """True for an array that lives on the GPU."""
    return False
