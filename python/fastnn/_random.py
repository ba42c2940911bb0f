"""The one source of randomness in fastnn. ``manual_seed(n)`` makes every
draw repeatable: initialisers and shuffling use ``generator()``, dropout
uses ``next_key()`` (its mask is a hash of the key and the element index, so
it does not depend on the thread count)."""
import os

import numpy as np

_MASK64 = (1 << 64) - 1
_seed = int.from_bytes(os.urandom(8), "little")
_counter = 0
_generator = None


def manual_seed(seed):
    """Seeds every random draw fastnn makes (initialisers, dropout, shuffling)."""
    global _seed, _counter, _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: argument 'seed' must be an int, got {type(seed).__name__}")
    _seed = int(seed) & _MASK64
    _counter = 0
    _generator = np.random.Generator(np.random.PCG64(_seed))


def initial_seed():
    """The seed in use (random at import, until manual_seed is called)."""
    return _seed


def generator():
    """The NumPy Generator behind initialisers and shuffling."""
    global _generator
    if _generator is None:
        _generator = np.random.Generator(np.random.PCG64(_seed))
    return _generator


def next_key():
    """A fresh 64-bit key for a counter-based kernel (splitmix64 of seed and counter)."""
    global _counter
    _counter += 1
    z = (_seed + _counter * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)
