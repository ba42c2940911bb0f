"""The augmentation warp of fastnn.data.ImageDataGenerator, in float64.

``keras_matrix`` composes the 3x3 sampling matrix from Keras's transform
parameters as Keras's apply_affine_transform does (rotation, then shift,
shear, zoom, as matrix products about the image's centre); ``warp`` samples
an image through a matrix with bilinear interpolation, reading outside the
image through the fill mode; ``transform`` is Keras's apply_transform: the
warp, then the flips of the result. Written to be obviously right, not fast;
nothing here imports fastnn.
"""
import numpy as np


def fill_index(i, n, mode):
    """The pixel that integer index i (array) of an axis of n pixels reads;
    -1 where mode "constant" reads cval. For a row abcd: nearest aaaa|abcd|dddd,
    reflect dcba|abcd|dcba, wrap abcd|abcd|abcd, constant kkkk|abcd|kkkk."""
    i = np.asarray(i, dtype=np.int64)
    inside = (i >= 0) & (i < n)
    if mode == "nearest":
        return np.clip(i, 0, n - 1)
    if mode == "constant":
        return np.where(inside, i, -1)
    if mode == "reflect":
        m = np.mod(i, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if mode == "wrap":
        return np.mod(i, n)
    raise ValueError(mode)


def warp(x, matrix, fill_mode, cval=0.0):
    """out (H, W, C) float64: output pixel (r, c) = x sampled bilinearly at row
    m[0,0] r + m[0,1] c + m[0,2], column m[1,0] r + m[1,1] c + m[1,2]."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    h, w, _ = x.shape
    r, c = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                       indexing="ij")
    sy = m[0, 0] * r + m[0, 1] * c + m[0, 2]
    sx = m[1, 0] * r + m[1, 1] * c + m[1, 2]
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = sy - y0, sx - x0
    out = np.zeros(x.shape)
    for dy in (0, 1):
        for dx in (0, 1):
            weight = (fy if dy else 1 - fy) * (fx if dx else 1 - fx)
            iy = fill_index(y0.astype(np.int64) + dy, h, fill_mode)
            ix = fill_index(x0.astype(np.int64) + dx, w, fill_mode)
            outside = (iy < 0) | (ix < 0)
            value = x[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]
            value = np.where(outside[..., None], cval, value)
            out += weight[..., None] * value
    return out


def keras_matrix(h, w, theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0):
    """The 3x3 matrix mapping an output pixel (row, column, 1) to where it
    samples the input; angles in degrees, shifts in pixels (tx along rows)."""
    t = np.deg2rad(theta)
    s = np.deg2rad(shear)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shear_m = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = rotation @ shift @ shear_m @ zoom
    oy, ox = h / 2 - 0.5, w / 2 - 0.5  # the centre of the image
    to_centre = np.array([[1, 0, oy], [0, 1, ox], [0, 0, 1]])
    from_centre = np.array([[1, 0, -oy], [0, 1, -ox], [0, 0, 1]])
    return to_centre @ m @ from_centre


def transform(x, params, fill_mode="nearest", cval=0.0):
    """Keras's apply_transform of one image (H, W, C) for a parameter dict
    (theta, tx, ty, shear, zx, zy, flip_horizontal, flip_vertical)."""
    h, w, _ = np.shape(x)
    m = keras_matrix(h, w, *(params.get(k, d) for k, d in (
        ("theta", 0.0), ("tx", 0.0), ("ty", 0.0), ("shear", 0.0), ("zx", 1.0), ("zy", 1.0))))
    out = warp(x, m[:2], fill_mode, cval)
    if params.get("flip_horizontal", False):
        out = out[:, ::-1]
    if params.get("flip_vertical", False):
        out = out[::-1]
    return out


def standardize(x, mean=None, std=None):
    """Keras's feature-wise standardisation: (x - mean) / (std + 1e-6), each
    step only when its statistic is given."""
    x = np.asarray(x, dtype=np.float64)
    if mean is not None:
        x = x - np.asarray(mean, dtype=np.float64).reshape(-1)
    if std is not None:
        x = x / (np.asarray(std, dtype=np.float64).reshape(-1) + 1e-6)
    return x
