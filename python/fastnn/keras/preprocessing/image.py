"""``ImageDataGenerator``: fastnn.data's, with Keras's arguments and ``flow``."""
from ...data import ImageDataGenerator, NumpyArrayIterator

__all__ = ["ImageDataGenerator", "NumpyArrayIterator"]
