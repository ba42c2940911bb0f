"""Argument conversion shared by the Python entry points: errors name the
function and the argument."""
import numbers

import numpy as np


def as_float32(x, name, fn):
    """x as a float32 ndarray, or TypeError naming the argument."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:  # ragged lists and the like
            raise TypeError(f"{fn}: argument '{name}' must be an array of numbers ({e})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(
            f"{fn}: argument '{name}' must be an array of numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32, order="C") if arr.dtype != np.float32 else arr


def real(x, name, fn):
    """x as a Python float, or TypeError naming the argument."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{fn}: argument '{name}' must be a real number, got {type(x).__name__}")
    return float(x)
