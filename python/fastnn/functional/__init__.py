"""Differentiable ops (``import fastnn.functional as F``).

Each op computes its output from the input arrays and, when grad mode is on
and an input requires a gradient, records a node whose closure maps the
output gradient to input gradients. The ops are device-agnostic: they call
the array namespace of their tensors' device (``fastnn._backend``: C++
kernels for float32 on the CPU, NumPy for other float dtypes such as
float64 for precise gradient checks, CUDA on the GPU). Importing the package
installs Tensor's operators and methods (``_methods.py``).

Losses here take PyTorch's argument order, ``F.mse_loss(input, target)``
(predictions first); ``fastnn.losses`` and ``compile(loss=...)`` take
Keras's, ``loss(y_true, y_pred)``.

One module per family: arithmetic (and matmul, linear), reductions, shapes
(and indexing), activations (elementwise ops), conv (and pooling), rnn,
losses.
"""
from . import _methods  # noqa: F401  (installs Tensor's operators)
from . import activations, arithmetic, conv, losses, reductions, rnn, shapes
from ._plumbing import _tensor
from .activations import *  # noqa: F401,F403
from .arithmetic import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .reductions import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .shapes import *  # noqa: F401,F403

# each family's __all__ is the package's: a new op is named once, in its module
__all__ = sorted(set(activations.__all__ + arithmetic.__all__ + conv.__all__ + losses.__all__
                     + reductions.__all__ + rnn.__all__ + shapes.__all__) - {"EPSILON"})
