"""Keras's regularizers: ``fastnn.regularizers`` (``L1``, ``L2``, ``L1L2`` and
their lower-case names, ``get``)."""
from ..regularizers import *  # noqa: F401,F403
from ..regularizers import __all__  # noqa: F401
