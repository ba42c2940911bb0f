"""Input pipelines: Keras's ``ImageDataGenerator`` (random affine augmentation
and feature-wise standardisation of NHWC images) and ``DataLoader``, a
shuffling batch iterator over arrays.

The random draws of a batch are made with NumPy in one go; the warp itself
(rotation, shifts, zoom, shear and flips folded into one matrix per image,
bilinear sampling, then the standardisation) runs in one C++ kernel over the
batch (``fastnn._C.affine_warp``), on ``fastnn.get_num_threads()`` threads.
Results do not depend on the thread count.

Randomness: with ``seed`` the batches, their order and their transforms are
the same on every run; without it the seed is drawn from fastnn's generator,
so ``fastnn.manual_seed`` makes them repeatable too.
"""
import numbers

import numpy as np

from . import _checks
from ._backend import CPU as _CPU
from . import _random

__all__ = ["DataLoader", "ImageDataGenerator", "NumpyArrayIterator"]

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
_STD_EPSILON = 1e-6  # Keras's: x / (std + 1e-6)
_MAX_RANGE = 1e6     # bound on ranges, so the sampled coordinates stay finite and exact
_STATS_CHUNK = 1024  # images per step when fit() sums over x


class ImageDataGenerator:
    """Random augmentation and standardisation of NHWC images, as Keras's.

    rotation_range: degrees; each image turns by an angle drawn uniformly
        from [-rotation_range, rotation_range] (positive turns it clockwise).
    width_shift_range, height_shift_range: a float below 1 is a fraction of
        the width (height): the shift is drawn uniformly from [-f, f] times
        it; a float of 1 or more is pixels, drawn uniformly from [-f, f]; an
        int n is whole pixels, in (-n, n); a list or array: a value drawn
        from it with a random sign (a fraction of the size when all are < 1).
    horizontal_flip, vertical_flip: flip half the images, at random.
    zoom_range: a float z for [1 - z, 1 + z], or [lower, upper]; the factors
        along the height and the width are drawn apart (above 1 zooms out).
    shear_range: degrees, drawn uniformly from [-shear_range, shear_range].
    featurewise_center, featurewise_std_normalization: subtract the
        per-channel mean, divide by the per-channel standard deviation
        (+ 1e-6) of the data given to ``fit``.
    fill_mode: how samples outside the image read, for a row abcd: "nearest"
        aaaa|abcd|dddd (the default), "constant" kkkk|abcd|kkkk with k =
        cval, "reflect" dcba|abcd|dcba, "wrap" abcd|abcd|abcd.

    The transform of an image, as Keras composes it: output pixel o (row,
    column; after the flips) reads the input at c + R S Z (o - c) + R t, c
    the image's centre, R the rotation, S the shear, Z the zoom and t = (tx,
    ty) the shift, with bilinear interpolation; then the standardisation.
    """

    def __init__(self, rotation_range=0, width_shift_range=0.0, height_shift_range=0.0,
                 horizontal_flip=False, featurewise_center=False,
                 featurewise_std_normalization=False, fill_mode="nearest", cval=0.0,
                 vertical_flip=False, zoom_range=0.0, shear_range=0.0):
        fn = "ImageDataGenerator"
        self.rotation_range = _nonnegative(rotation_range, "rotation_range", fn)
        self.width_shift_range = _shift_range(width_shift_range, "width_shift_range", fn)
        self.height_shift_range = _shift_range(height_shift_range, "height_shift_range", fn)
        self.shear_range = _nonnegative(shear_range, "shear_range", fn)
        self.zoom_range = _zoom_range(zoom_range, fn)
        self.horizontal_flip = _checks.flag(horizontal_flip, "horizontal_flip", fn)
        self.vertical_flip = _checks.flag(vertical_flip, "vertical_flip", fn)
        self.featurewise_center = _checks.flag(featurewise_center, "featurewise_center", fn)
        self.featurewise_std_normalization = _checks.flag(
            featurewise_std_normalization, "featurewise_std_normalization", fn)
        if not isinstance(fill_mode, str) or fill_mode not in FILL_MODES:
            raise ValueError(f"{fn}: argument 'fill_mode' must be one of {FILL_MODES}, got "
                             f"{fill_mode!r}")
        self.fill_mode = fill_mode
        self.cval = _real(cval, "cval", fn)
        self.mean = None  # (1, 1, C) float32 once fit() has run, as Keras
        self.std = None

    # ------------------------------------------------------------ statistics
    def fit(self, x, augment=False, rounds=1, seed=None):
        """Computes the per-channel mean and standard deviation of x (N, H, W, C)
        for featurewise_center / featurewise_std_normalization. With augment,
        of `rounds` randomly transformed copies of x (seeded by seed)."""
        fn = "ImageDataGenerator.fit"
        x = _images(x, "x", fn)
        if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
            raise ValueError(f"{fn}: argument 'rounds' must be an int >= 1, got {rounds!r}")
        if augment:
            seed = _seed(seed, fn)
        else:
            rounds = 1
        channels = x.shape[3]

        def chunks():
            for r in range(rounds):
                for start in range(0, len(x), _STATS_CHUNK):
                    index = np.arange(start, min(len(x), start + _STATS_CHUNK), dtype=np.int64)
                    if augment:
                        rng = np.random.default_rng([seed, 2, r, start])
                        yield self._warp(x, index, self._draw(rng, len(index), x.shape[1:3]),
                                         standardize=False)
                    else:
                        yield x[index]

        count = rounds * x.shape[0] * x.shape[1] * x.shape[2]
        if count == 0:
            raise ValueError(f"{fn}: argument 'x' must hold at least one pixel, got shape "
                             f"{x.shape}")
        # two passes in float64 over chunks: no float64 copy of all of x
        total = np.zeros(channels)
        for c in chunks():
            total += c.sum(axis=(0, 1, 2), dtype=np.float64)
        mean = total / count
        squares = np.zeros(channels)
        for c in chunks():
            d = c.astype(np.float64) - mean
            squares += np.einsum("nhwc,nhwc->c", d, d)
        std = np.sqrt(squares / count)
        self.mean = mean.astype(np.float32).reshape(1, 1, channels)
        self.std = std.astype(np.float32).reshape(1, 1, channels)
        return self

    def standardize(self, x):
        """x (one image (H, W, C) or a batch (N, H, W, C)) as a new float32 array
        with the feature-wise standardisation applied."""
        fn = "ImageDataGenerator.standardize"
        x = _as_real_array(x, "x", fn)
        if x.ndim not in (3, 4):
            raise ValueError(f"{fn}: argument 'x' must be 3-D (H, W, C) or 4-D (N, H, W, C), got "
                             f"shape {x.shape}")
        scale, shift = self._affine_standardization(x.shape[-1], fn)
        return (x.astype(np.float32) * scale + shift).astype(np.float32)

    # ------------------------------------------------------------ one image
    def get_random_transform(self, img_shape, seed=None):
        """A dict of transform parameters for an image of shape (H, W, C), as
        Keras's: theta, tx, ty, shear (degrees and pixels), zx, zy,
        flip_horizontal, flip_vertical."""
        fn = "ImageDataGenerator.get_random_transform"
        if not isinstance(img_shape, (tuple, list)) or len(img_shape) not in (2, 3):
            raise ValueError(f"{fn}: argument 'img_shape' must be (H, W, C), got {img_shape!r}")
        rng = np.random.default_rng(_seed(seed, fn)) if seed is not None else _random.generator()
        params = self._draw(rng, 1, tuple(img_shape[:2]))
        return {k: (bool(v[0]) if v.dtype == bool else float(v[0])) for k, v in params.items()}

    def apply_transform(self, x, transform_parameters):
        """x (H, W, C) transformed by a dict as get_random_transform's (missing
        keys mean no change), as a new float32 array; no standardisation."""
        fn = "ImageDataGenerator.apply_transform"
        x = _image(x, fn)
        if not isinstance(transform_parameters, dict):
            raise TypeError(f"{fn}: argument 'transform_parameters' must be a dict, got "
                            f"{type(transform_parameters).__name__}")
        defaults = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0,
                    "flip_horizontal": False, "flip_vertical": False}
        params = {}
        for key, default in defaults.items():
            value = transform_parameters.get(key, default)
            if isinstance(default, bool):
                params[key] = np.array([bool(value)])
            else:
                params[key] = np.array([_real(value, f"transform_parameters['{key}']", fn)])
        return self._warp(x[None], np.zeros(1, np.int64), params, standardize=False)[0]

    def random_transform(self, x, seed=None):
        """x (H, W, C) randomly transformed (no standardisation), float32."""
        x = _image(x, "ImageDataGenerator.random_transform")
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    # ------------------------------------------------------------ batches
    def flow(self, x, y=None, batch_size=32, shuffle=True, seed=None):
        """An iterator over batches of augmented, standardised float32 images of
        x (N, H, W, C) (float32 or uint8, other numbers are converted), with the
        matching rows of y (any array of N rows; None yields images alone).
        As Keras's: ``len()`` is the number of batches per epoch (the last may
        be smaller), ``next()`` goes on for ever, reshuffling at each epoch, and
        ``it[i]`` is batch i of the current epoch."""
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, seed=seed)

    # ------------------------------------------------------------ internals
    def _draw(self, rng, n, size):
        """Keras's random transform parameters for n images of size (H, W),
        as arrays of n values."""
        h, w = size
        zero = np.zeros(n)
        p = {"theta": rng.uniform(-self.rotation_range, self.rotation_range, n)
             if self.rotation_range else zero,
             "tx": _draw_shift(rng, self.height_shift_range, n, h),
             "ty": _draw_shift(rng, self.width_shift_range, n, w),
             "shear": rng.uniform(-self.shear_range, self.shear_range, n)
             if self.shear_range else zero}
        lo, hi = self.zoom_range
        if lo == 1 and hi == 1:
            p["zx"] = p["zy"] = np.ones(n)
        else:
            p["zx"], p["zy"] = rng.uniform(lo, hi, (2, n))
        p["flip_horizontal"] = rng.random(n) < 0.5 if self.horizontal_flip else zero > 0
        p["flip_vertical"] = rng.random(n) < 0.5 if self.vertical_flip else zero > 0
        return p

    def _warp(self, x, index, params, standardize=True):
        """The images x[index] transformed by params (arrays of len(index)) as
        float32 (B, H, W, C), standardised when asked."""
        h, w, channels = x.shape[1:]
        if standardize:
            scale, shift = self._affine_standardization(channels, "ImageDataGenerator.flow")
        else:
            scale, shift = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        matrix = _matrices(params, h, w)
        return _CPU.affine_warp(x, index, matrix, scale, shift, self.fill_mode, self.cval)

    def _affine_standardization(self, channels, fn):
        """(scale, shift) float32 (C,) such that standardize(v) = v * scale + shift."""
        scale = np.ones(channels, np.float32)
        shift = np.zeros(channels, np.float32)
        if not (self.featurewise_center or self.featurewise_std_normalization):
            return scale, shift
        if self.mean is None:
            raise ValueError(f"{fn}: featurewise_center / featurewise_std_normalization need the "
                             f"data's statistics: call fit(x) on the training images first")
        if self.mean.shape[-1] != channels:
            raise ValueError(f"{fn}: the images have {channels} channels but fit() saw "
                             f"{self.mean.shape[-1]}")
        mean = self.mean.reshape(-1).astype(np.float64)
        if self.featurewise_std_normalization:
            scale = 1.0 / (self.std.reshape(-1).astype(np.float64) + _STD_EPSILON)
        if self.featurewise_center:
            shift = -mean * scale
        return np.asarray(scale, np.float32), np.asarray(shift, np.float32)


class NumpyArrayIterator:
    """Batches of ``ImageDataGenerator.flow`` (see there). Batch i of epoch e
    depends only on (seed, e, i): its images (the epoch's shuffle) and their
    random transforms."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=True, seed=None):
        fn = "ImageDataGenerator.flow"
        self.x = _images(x, "x", fn)
        self.y = _targets(y, len(self.x), fn)
        self.image_data_generator = image_data_generator
        self.batch_size = _checks.integer(batch_size, "batch_size", fn, low=1)
        self.shuffle = bool(shuffle)
        self.seed = _seed(seed, fn)
        self.n = len(self.x)
        # fail now, not at the first batch, when fit() is missing
        image_data_generator._affine_standardization(self.x.shape[3], fn)
        self.epoch = 0
        self.batch_index = 0
        self._order = None

    def __len__(self):
        return -(-self.n // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self):
        """The next batch; after an epoch's last batch, the next epoch begins."""
        if self.n == 0:
            raise StopIteration
        batch = self[self.batch_index]
        self.batch_index += 1
        if self.batch_index >= len(self):
            self.on_epoch_end()
        return batch

    def __getitem__(self, i):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"NumpyArrayIterator: batch index must be an int, got "
                            f"{type(i).__name__}")
        if not 0 <= i < len(self):
            raise IndexError(f"NumpyArrayIterator: batch {i} is out of range [0, {len(self)})")
        index, params = self._batch_params(int(i))
        x = self.image_data_generator._warp(self.x, index, params)
        return x if self.y is None else (x, self.y[index])

    def _batch_params(self, i):
        """(rows of x, transform parameter arrays) of batch i of this epoch."""
        index = self._epoch_order()[i * self.batch_size:(i + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, 1, self.epoch, i])
        return index, self.image_data_generator._draw(rng, len(index), self.x.shape[1:3])

    def on_epoch_end(self):
        """Starts the next epoch (a new shuffle)."""
        self.epoch += 1
        self.batch_index = 0
        self._order = None

    def reset(self):
        """Back to the first batch of the current epoch."""
        self.batch_index = 0

    def _epoch_order(self):
        if self._order is None:
            self._order = (np.random.default_rng([self.seed, 0, self.epoch]).permutation(self.n)
                           if self.shuffle else np.arange(self.n, dtype=np.int64))
        return self._order


class DataLoader:
    """Batches of x (and the matching rows of y) for one epoch per ``iter()``,
    as PyTorch's DataLoader over arrays: ``for xb, yb in DataLoader(x, y):``.

    x, y: arrays with the same number of rows (any shape and dtype; batches
    keep them). shuffle: a new order every epoch, the same on every run for
    a given seed (without one, drawn from fastnn's generator). drop_last:
    leave out the last, smaller batch. ``len()`` is the number of batches."""

    def __init__(self, x, y=None, batch_size=32, shuffle=True, seed=None, drop_last=False):
        fn = "DataLoader"
        self.x = _rows(x, "x", fn)
        self.y = _targets(y, len(self.x), fn)
        self.batch_size = _checks.integer(batch_size, "batch_size", fn, low=1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _seed(seed, fn)
        self.epoch = 0  # epochs begun so far

    def __len__(self):
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n, bs = len(self.x), self.batch_size
        order = (np.random.default_rng([self.seed, 0, self.epoch]).permutation(n)
                 if self.shuffle else None)
        self.epoch += 1
        for i in range(len(self)):
            rows = order[i * bs:(i + 1) * bs] if order is not None else slice(i * bs, (i + 1) * bs)
            xb = self.x[rows]
            yield xb if self.y is None else (xb, self.y[rows])


# ---------------------------------------------------------------- the transform

def _matrices(p, h, w):
    """(B, 6) float64: the sampling matrix [a00 a01 a02 a10 a11 a12] of each
    image (see ImageDataGenerator), from parameter arrays of B values."""
    theta = np.deg2rad(p["theta"])
    cos, sin = np.cos(theta), np.sin(theta)
    zx, zy = p["zx"], p["zy"]
    m = np.empty((6, len(theta)))
    # A = R @ S @ Z: R = [[cos, -sin], [sin, cos]], S = [[1, -sin s], [0, cos s]],
    # Z = diag(zx, zy)
    if np.any(p["shear"]):
        shear = np.deg2rad(p["shear"])
        s01, s11 = -np.sin(shear) * zy, np.cos(shear) * zy
    else:
        s01, s11 = 0.0, zy
    np.multiply(cos, zx, out=m[0])
    m[1] = cos * s01 - sin * s11
    np.multiply(sin, zx, out=m[3])
    m[4] = sin * s01 + cos * s11
    # input = A (o - c) + c + R t, c = ((h - 1) / 2, (w - 1) / 2), t = (tx, ty)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    tx, ty = p["tx"], p["ty"]
    m[2] = cy - m[0] * cy - m[1] * cx + cos * tx - sin * ty
    m[5] = cx - m[3] * cy - m[4] * cx + sin * tx + cos * ty
    # flips act on the output pixel o: row h - 1 - r, column w - 1 - c
    for flip, (i, j), size in ((p["flip_vertical"], (0, 3), h), (p["flip_horizontal"], (1, 4), w)):
        if np.any(flip):
            moved = flip * (size - 1.0)
            m[2] += m[i] * moved
            m[5] += m[j] * moved
            sign = 1.0 - 2.0 * flip
            m[i] *= sign
            m[j] *= sign
    return np.ascontiguousarray(m.T)


def _draw_shift(rng, spec, n, size):
    """n shifts in pixels from a normalised shift range (see ImageDataGenerator)."""
    kind, value = spec
    if kind == "none":
        return np.zeros(n)
    if kind == "float":
        shift = rng.uniform(-value, value, n)
        return shift * size if value < 1 else shift
    if kind == "int":
        return (rng.integers(0, value, n) * rng.choice((-1, 1), n)).astype(np.float64)
    shift = rng.choice(value, n) * rng.choice((-1, 1), n)
    return shift * size if np.max(value) < 1 else shift


# ---------------------------------------------------------------- argument checks

def _real(v, name, fn):
    return _checks.number(v, name, fn, finite=True)


def _nonnegative(v, name, fn):
    return _checks.number(v, name, fn, 0.0, _MAX_RANGE)


def _shift_range(v, name, fn):
    """("none" | "float" | "int" | "choice", value) of a Keras shift range."""
    if isinstance(v, (list, tuple, np.ndarray)):
        values = np.asarray(v)
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iuf":
            raise ValueError(f"{fn}: argument '{name}' must be a float, an int or a non-empty "
                             f"1-D list of numbers, got {v!r}")
        values = values.astype(np.float64)
        if not np.all(np.isfinite(values)) or np.max(np.abs(values)) > _MAX_RANGE:
            raise ValueError(f"{fn}: argument '{name}' must hold finite values in "
                             f"[-{_MAX_RANGE:g}, {_MAX_RANGE:g}], got {v!r}")
        return ("choice", values)
    if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool):
        v = _nonnegative(int(v), name, fn)
        return ("int", int(v)) if v else ("none", 0)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        v = _nonnegative(v, name, fn)
        return ("float", v) if v else ("none", 0)
    raise TypeError(f"{fn}: argument '{name}' must be a float, an int or a 1-D list of numbers, "
                    f"got {type(v).__name__}")


def _zoom_range(v, fn):
    if isinstance(v, (list, tuple, np.ndarray)):
        if len(v) != 2:
            raise ValueError(f"{fn}: argument 'zoom_range' must be a float or [lower, upper], got "
                             f"{v!r}")
        lo, hi = (_real(float(z) if isinstance(z, np.number) else z, "zoom_range", fn) for z in v)
    else:
        z = _real(v, "zoom_range", fn)
        lo, hi = 1 - z, 1 + z
    if not 0 < lo <= hi <= _MAX_RANGE:
        raise ValueError(f"{fn}: argument 'zoom_range' must give 0 < lower <= upper <= "
                         f"{_MAX_RANGE:g}, got [{lo}, {hi}]")
    return (lo, hi)


def _seed(seed, fn):
    """A seed in [0, 2**64) (any int taken modulo 2**64), or one drawn from
    fastnn's generator when None."""
    if seed is None:
        return int(_random.generator().integers(0, 2**63))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{fn}: argument 'seed' must be an int or None, got {type(seed).__name__}")
    return int(seed) % 2**64


def _as_real_array(x, name, fn):
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # a fastnn Tensor
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: argument '{name}' must be an array of numbers ({e})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{fn}: argument '{name}' must be an array of numbers, got dtype "
                        f"{arr.dtype}")
    return arr


def _images(x, name, fn):
    """x (N, H, W, C) as the kernel reads it: uint8 or float32, C-contiguous
    (uint8 and float32 arrays are not copied when already so)."""
    arr = _as_real_array(x, name, fn)
    if arr.ndim != 4:
        raise ValueError(f"{fn}: argument '{name}' must be 4-D (N, H, W, C), got shape "
                         f"{arr.shape}")
    if arr.dtype == np.uint8 or (arr.dtype == np.float32 and arr.dtype.isnative):
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _image(x, fn):
    arr = _as_real_array(x, "x", fn)
    if arr.ndim != 3:
        raise ValueError(f"{fn}: argument 'x' must be 3-D (H, W, C), got shape {arr.shape}")
    return _images(arr[None], "x", fn)[0]


def _rows(x, name, fn):
    arr = _as_real_array(x, name, fn) if not isinstance(x, np.ndarray) else x
    if arr.ndim < 1:
        raise ValueError(f"{fn}: argument '{name}' must have a batch axis, got a scalar")
    return arr


def _targets(y, n, fn):
    if y is None:
        return None
    y = np.asarray(y.numpy() if hasattr(y, "numpy") and not isinstance(y, np.ndarray) else y)
    if y.ndim < 1 or len(y) != n:
        raise ValueError(f"{fn}: arguments 'x' and 'y' must have the same number of rows, got "
                         f"{n} images and 'y' of shape {y.shape}")
    return y
