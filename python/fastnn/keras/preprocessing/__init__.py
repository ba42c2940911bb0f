"""Keras's ``preprocessing`` namespace: ``preprocessing.image.ImageDataGenerator``."""
from . import image

__all__ = ["image"]
