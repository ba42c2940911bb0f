"""Keras's losses: ``fastnn.losses`` (Keras's names, classes and argument
order ``loss(y_true, y_pred)``, returning the batch mean)."""
from ..losses import *  # noqa: F401,F403
from ..losses import __all__  # noqa: F401
