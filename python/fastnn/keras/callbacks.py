"""Keras's callbacks: ``fastnn.callbacks`` (``Callback``, ``History``,
``EarlyStopping``, ``ModelCheckpoint``, ``LearningRateScheduler``,
``ReduceLROnPlateau``, ``CSVLogger``), with Keras's arguments."""
from ..callbacks import *  # noqa: F401,F403
from ..callbacks import __all__  # noqa: F401
