"""A generated 10-class image set: 32x32 RGB uint8 pictures of one shape each,
in the format of ``cifar10.load_data()``. It ships as code, not data: the
images are drawn from a fixed seed on first use (a few seconds) and cached.

Classes (``CLASS_NAMES``): circle, square, triangle, plus, ring, horizontal
bar, vertical bar, diamond, star, ellipse. Each picture varies the shape's
size, position (it may leave the frame in part), rotation (bars and the
diamond stay near their upright pose, which is what tells them apart), its
colour and shading, the background's colour, gradient and stripes, a few
small distracting blots, and pixel noise.
"""
import concurrent.futures
import math
import os

import numpy as np

from . import _cache

__all__ = ["CLASS_NAMES", "load_data"]

CLASS_NAMES = ("circle", "square", "triangle", "plus", "ring", "horizontal_bar", "vertical_bar",
               "diamond", "star", "ellipse")

SIZE = 32
# Bump when the drawing changes: it names the cache file, so old caches are
# never read as the new set.
VERSION = 1
_CHUNK = 500  # images drawn together, from a seed of their own


def load_data(n_train=50000, n_test=10000, seed=0):
    """((x_train, y_train), (x_test, y_test)): x uint8 (n, 32, 32, 3), y int64
    (n, 1), as ``cifar10.load_data()``. Classes are balanced (equal counts when
    n is a multiple of 10). The same arguments give the same images, from the
    cache under ``$FASTNN_DATA`` (or ``~/.cache/fastnn``) once drawn; a
    damaged cache is drawn again."""
    n_train = _count(n_train, "n_train")
    n_test = _count(n_test, "n_test")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"shapes.load_data: argument 'seed' must be an int >= 0, got {seed!r}")
    name = f"shapes-v{VERSION}-{n_train}-{n_test}-{int(seed)}.npz"
    shapes = {"x_train": (n_train, SIZE, SIZE, 3), "y_train": (n_train, 1),
              "x_test": (n_test, SIZE, SIZE, 3), "y_test": (n_test, 1)}

    def draw():
        x_train, y_train = generate(n_train, (int(seed), 0))
        x_test, y_test = generate(n_test, (int(seed), 1))
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

    arrays = _cache.load_or_create(name, shapes, draw, label_range=len(CLASS_NAMES))
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _count(n, name):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"shapes.load_data: argument '{name}' must be an int >= 0, got {n!r}")
    return int(n)


def generate(n, seed):
    """(x uint8 (n, 32, 32, 3), y int64 (n, 1)) drawn from `seed` (an int or a
    tuple of ints), without the cache. Chunks of images are drawn from seeds
    of their own, on a few threads (NumPy lets go of the GIL while it
    computes); the result does not depend on the thread count."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    chunk_seeds = rng.integers(0, 2**63, size=(n + _CHUNK - 1) // _CHUNK)
    x = np.empty((n, SIZE, SIZE, 3), np.uint8)

    def draw(i):
        lo, hi = i * _CHUNK, min(n, (i + 1) * _CHUNK)
        x[lo:hi] = _draw(labels[lo:hi], np.random.default_rng(int(chunk_seeds[i])))

    workers = max(1, min(len(chunk_seeds), os.cpu_count() or 1, 8))
    if workers == 1:
        for i in range(len(chunk_seeds)):
            draw(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(draw, range(len(chunk_seeds))))
    return x, labels.astype(np.int64).reshape(n, 1)


# ---------------------------------------------------------------- drawing
# Pictures are drawn in planes, (n, 3, 1024) and maps (n, 1024): NumPy's
# loops then run over 1024 pixels, not over 3 channels.

_GRID_Y, _GRID_X = (g.reshape(-1) for g in np.meshgrid(
    np.arange(SIZE, dtype=np.float32) + 0.5, np.arange(SIZE, dtype=np.float32) + 0.5,
    indexing="ij"))  # pixel centres, row-major


def _uniform(rng, lo, hi, shape):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def _column(values):
    """(n,) -> (n, 1) float32: one value per image, broadcast over its pixels."""
    return np.asarray(values, dtype=np.float32)[:, None]


def _draw(labels, rng):
    """Pictures (n, 32, 32, 3) uint8 of the shapes named by labels."""
    n = len(labels)
    xx, yy = _GRID_X, _GRID_Y
    img = np.empty((n, 3, SIZE * SIZE), np.float32)
    base = _background(img, rng)

    # the shape: position, size, pose; local coordinates (u right, v down) in pixels
    cx = _column(rng.uniform(SIZE / 2 - 7, SIZE / 2 + 7, n))
    cy = _column(rng.uniform(SIZE / 2 - 7, SIZE / 2 + 7, n))
    size = _column(rng.uniform(6.0, 12.0, n))
    upright = np.isin(labels, (5, 6, 7))
    angle = np.deg2rad(np.where(upright, rng.uniform(-25, 25, n), rng.uniform(-180, 180, n)))
    cos, sin = _column(np.cos(angle)), _column(np.sin(angle))
    dx, dy = xx - cx, yy - cy
    u = cos * dx + sin * dy
    v = cos * dy - sin * dx
    dist = np.empty((n, SIZE * SIZE), np.float32)
    for k, sdf in enumerate(_SDFS):
        sel = labels == k
        if sel.any():
            dist[sel] = sdf(u[sel], v[sel], size[sel])
    alpha = np.clip(0.5 - dist, 0.0, 1.0, out=dist)  # one pixel of anti-aliasing

    # its colour, far enough from the background's, shaded along a random direction
    colour = _uniform(rng, 0, 255, (n, 3))
    gap = colour - base
    norm = np.linalg.norm(gap, axis=1, keepdims=True)
    min_gap = _uniform(rng, 40, 110, (n, 1))
    direction = np.where(norm > 1e-3, gap / np.maximum(norm, 1e-3), np.float32(1 / np.sqrt(3)))
    colour = np.where(norm < min_gap, base + direction * min_gap, colour).astype(np.float32)
    shade_angle = rng.uniform(0, 2 * np.pi, n)
    shade = rng.uniform(0, 0.35, n) / size[:, 0]
    shading = 1 + _column(shade * np.cos(shade_angle)) * dx + _column(shade * np.sin(shade_angle)) * dy
    # img += alpha * (colour * shading - img)
    fg = colour[:, :, None] * shading[:, None, :]
    fg -= img
    fg *= alpha[:, None, :]
    img += fg

    _blots(img, rng)
    sigma = _uniform(rng, 3, 20, (n, 1, 1))
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= sigma
    img += noise
    np.clip(img, 0, 255, out=img)
    img += 0.5
    pixels = img.astype(np.uint8)  # rounds: the values are >= 0
    return pixels.reshape(n, 3, SIZE, SIZE).transpose(0, 2, 3, 1)


def _background(out, rng):
    """Fills out (n, 3, 1024) with a colour, a linear gradient and faint
    stripes; returns the colour (n, 3)."""
    n = out.shape[0]
    xx, yy = _GRID_X - SIZE / 2, _GRID_Y - SIZE / 2
    base = _uniform(rng, 0, 255, (n, 3))
    g_angle = rng.uniform(0, 2 * np.pi, n)
    slope = _uniform(rng, 0, 3.0, (n, 3, 1))  # per pixel, per channel
    ramp = _column(np.cos(g_angle)) * xx + _column(np.sin(g_angle)) * yy
    s_angle = rng.uniform(0, np.pi, n)
    freq = 2 * np.pi / rng.uniform(3.0, 12.0, n)
    phase = _uniform(rng, 0, 2 * np.pi, (n, 1))
    wave = np.sin(_column(freq * np.cos(s_angle)) * xx + _column(freq * np.sin(s_angle)) * yy
                  + phase)
    amp = _uniform(rng, 0, 30, (n, 3, 1))
    np.multiply(slope, ramp[:, None, :], out=out)
    out += amp * wave[:, None, :]
    out += base[:, :, None]
    return base


def _blots(img, rng):
    """Paints up to three small round blots of random colours into img
    (n, 3, 1024), each in the 7 x 7 window of pixels it can touch (the part
    inside the image)."""
    n = img.shape[0]
    offsets = np.arange(7)
    images = np.broadcast_to(np.arange(n)[:, None, None], (n, 7, 7))
    for _ in range(3):
        present = rng.uniform(0, 1, n) < 0.5
        by, bx = _uniform(rng, 0, SIZE, (2, n))
        r = _uniform(rng, 1.0, 2.5, n)
        colour = _uniform(rng, 0, 255, (n, 3))
        rows = np.floor(by).astype(np.int64)[:, None] - 3 + offsets  # (n, 7)
        cols = np.floor(bx).astype(np.int64)[:, None] - 3 + offsets
        dy = rows.astype(np.float32) + 0.5 - by[:, None]
        dx = cols.astype(np.float32) + 0.5 - bx[:, None]
        d = np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2) - r[:, None, None]
        a = np.clip(0.5 - d, 0, 1) * present[:, None, None]
        rr = np.broadcast_to(rows[:, :, None], (n, 7, 7))
        cc = np.broadcast_to(cols[:, None, :], (n, 7, 7))
        keep = (rr >= 0) & (rr < SIZE) & (cc >= 0) & (cc < SIZE) & (a > 0)
        which, pixel = images[keep], rr[keep] * SIZE + cc[keep]
        patch = img[which, :, pixel]  # (m, 3)
        patch += a[keep][:, None] * (colour[which] - patch)
        img[which, :, pixel] = patch


# ---------------------------------------------------------------- signed distances
# d(u, v, s) < 0 inside the shape of size s (about its half-extent), in pixels.

def _box(u, v, bu, bv):
    qu, qv = np.abs(u) - bu, np.abs(v) - bv
    outside = np.sqrt(np.maximum(qu, 0) ** 2 + np.maximum(qv, 0) ** 2)
    return outside + np.minimum(np.maximum(qu, qv), 0)


def _circle(u, v, s):
    return np.sqrt(u * u + v * v) - s * 0.9


def _square(u, v, s):
    return _box(u, v, s * 0.75, s * 0.75)


def _triangle(u, v, s):
    # equilateral, circumradius s, centred on its centroid, apex up
    r = s * math.sqrt(3) / 2  # half the side
    k = math.sqrt(3)
    pu = np.abs(u) - r
    pv = -v + r / k
    flip = pu + k * pv > 0
    pu, pv = np.where(flip, (pu - k * pv) / 2, pu), np.where(flip, (-k * pu - pv) / 2, pv)
    pu = pu - np.clip(pu, -2 * r, 0)
    return -np.sqrt(pu * pu + pv * pv) * np.sign(pv)


def _plus(u, v, s):
    return np.minimum(_box(u, v, s, s * 0.28), _box(u, v, s * 0.28, s))


def _ring(u, v, s):
    return np.abs(np.sqrt(u * u + v * v) - s * 0.75) - s * 0.22


def _hbar(u, v, s):
    return _box(u, v, s, s * 0.3)


def _vbar(u, v, s):
    return _box(u, v, s * 0.3, s)


def _diamond(u, v, s):
    # a rhombus with half-diagonals (0.65 s, s), the long one upright
    bu, bv = s * 0.65, s
    pu, pv = np.abs(u), np.abs(v)
    h = np.clip(((bu - 2 * pu) * bu - (bv - 2 * pv) * bv) / (bu * bu + bv * bv), -1, 1)
    du, dv = pu - 0.5 * bu * (1 - h), pv - 0.5 * bv * (1 + h)
    return np.sqrt(du * du + dv * dv) * np.sign(pu * bv + pv * bu - bu * bv)


def _star(u, v, s):
    # five points, outer radius s, inner radius 0.45 s: fold into one point's wedge
    k1u, k1v = 0.809016994375, -0.587785252292
    pu, pv = np.abs(u), -v
    d1 = np.maximum(k1u * pu + k1v * pv, 0)
    pu, pv = pu - 2 * d1 * k1u, pv - 2 * d1 * k1v
    d2 = np.maximum(-k1u * pu + k1v * pv, 0)
    pu, pv = pu + 2 * d2 * k1u, pv - 2 * d2 * k1v
    pu = np.abs(pu)
    pv = pv - s
    bau, bav = 0.45 * -k1v, 0.45 * k1u - 1
    h = np.clip((pu * bau + pv * bav) / (bau * bau + bav * bav), 0, s)
    du, dv = pu - bau * h, pv - bav * h
    return np.sqrt(du * du + dv * dv) * np.sign(pv * bau - pu * bav)


def _ellipse(u, v, s):
    # semi-axes (s, 0.55 s); a first-order distance, close enough near the edge
    a, b = s, s * 0.55
    k0 = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = np.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, 1e-6)


_SDFS = (_circle, _square, _triangle, _plus, _ring, _hbar, _vbar, _diamond, _star, _ellipse)
