"""Tensor's operators and methods, installed on ``Tensor`` when the package
is imported: the core layer knows no op, the ops add themselves."""
import numpy as np

from ._plumbing import Tensor, _cpu_only, _wrap
from .activations import (abs, clip, exp, log, log_softmax, relu, sigmoid, softmax, sqrt,
                          tanh)
from .arithmetic import _rdiv, _rmatmul, _rpow, _rsub, add, div, matmul, mul, neg, pow, sub
from .reductions import argmax, max, mean, min, sum
from .shapes import getitem, permute, reshape, transpose


def _install():
    T = Tensor
    T.__add__ = add
    T.__radd__ = add
    T.__sub__ = sub
    T.__rsub__ = _rsub
    T.__mul__ = mul
    T.__rmul__ = mul
    T.__truediv__ = div
    T.__rtruediv__ = _rdiv
    T.__pow__ = pow
    T.__rpow__ = _rpow
    T.__matmul__ = matmul
    T.__rmatmul__ = _rmatmul
    T.__neg__ = neg
    T.__getitem__ = getitem
    T.sum = sum
    T.mean = mean
    T.max = max
    T.reshape = reshape
    T.view = reshape
    T.transpose = transpose
    T.permute = permute
    T.T = property(lambda self: transpose(self))
    T.exp = exp
    T.log = log
    T.sqrt = sqrt
    T.clip = clip
    T.abs = abs
    T.__abs__ = abs
    T.min = min
    T.argmax = argmax
    T.relu = relu
    T.sigmoid = sigmoid
    T.tanh = tanh
    T.softmax = softmax
    T.log_softmax = log_softmax
    T.matmul = matmul
    T.flatten = lambda self: reshape(self, -1)

    def _compare(op):
        def f(self, other):
            _cpu_only("comparison", self, other if isinstance(other, Tensor) else None)
            o = other._data if isinstance(other, Tensor) else other
            return _wrap(np.asarray(op(self._data, o)))
        return f
    T.__eq__ = _compare(np.equal)
    T.__ne__ = _compare(np.not_equal)
    T.__hash__ = object.__hash__  # tensors hash by identity (defining __eq__ removes it)
    T.__lt__ = _compare(np.less)
    T.__le__ = _compare(np.less_equal)
    T.__gt__ = _compare(np.greater)
    T.__ge__ = _compare(np.greater_equal)


_install()

