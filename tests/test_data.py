"""fastnn.data: the augmentation warp kernel (_C.affine_warp and its plain
C++ version), ImageDataGenerator (Keras's transform parameters, flow's
batches, shuffling and seeding, feature-wise statistics) and DataLoader.

The warp is checked against reference/augment.py (float64): a kernel given
sampling matrices against ``warp``, and the generator's transforms, from
Keras's parameters, against ``transform`` (Keras's composition of 3x3
matrices, then flips of the result), for every fill mode."""
import math

import numpy as np
import pytest

import fastnn
from conftest import num_threads
from fastnn import _C
from fastnn.data import DataLoader, ImageDataGenerator
from reference import augment as ref
from reference.checks import assert_within

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
EPS32 = float(np.finfo(np.float32).eps)

# (N, H, W, C): ones, primes, odd, and the CIFAR size
SHAPES = [(1, 1, 1, 1), (2, 1, 7, 3), (3, 5, 7, 3), (2, 13, 11, 4), (1, 6, 9, 2), (3, 32, 32, 3),
          (2, 8, 5, 5)]


def images(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return (rng.standard_normal(shape) * 3).astype(np.float32)


def random_matrices(rng, b, h, w):
    """(B, 6) sampling matrices that turn, stretch and shift by up to a few
    image sizes, so that many samples fall outside the image."""
    angle = rng.uniform(-np.pi, np.pi, b)
    scale = rng.uniform(0.5, 2.0, (b, 2))
    lin = np.stack([np.cos(angle) * scale[:, 0], -np.sin(angle) * scale[:, 1],
                    np.sin(angle) * scale[:, 0], np.cos(angle) * scale[:, 1]], axis=1)
    shift = rng.uniform(-1.5, 1.5, (b, 2)) * (h, w) + ((h - 1) / 2, (w - 1) / 2)
    return np.ascontiguousarray(np.stack(
        [lin[:, 0], lin[:, 1], shift[:, 0], lin[:, 2], lin[:, 3], shift[:, 1]], axis=1))


def warp_tolerance(x, scale, shift, cval):
    """float32 error of the warp: weights and a sum of four products rounded
    in float32, times the largest magnitude involved, then the affine step."""
    magnitude = max(float(np.abs(x.astype(np.float64)).max(initial=0)), abs(cval))
    return (16 * EPS32 * magnitude * np.abs(scale).max() + 4 * EPS32 * np.abs(shift).max()
            + 1e-30)


def expected_warp(x, index, matrix, scale, shift, fill_mode, cval):
    return np.stack([ref.warp(x[i], m.reshape(2, 3), fill_mode, cval) * scale + shift
                     for i, m in zip(index, matrix)]) if len(index) else \
        np.zeros((0,) + x.shape[1:])


# ================================================================ the kernel

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_affine_warp_matches_reference(shape, dtype, fill_mode, threads):
    n, h, w, c = shape
    x = images(shape, dtype)
    rng = np.random.default_rng(1)
    b = 5
    index = rng.integers(0, n, b).astype(np.int64)
    matrix = random_matrices(rng, b, h, w)
    scale = rng.uniform(0.5, 2, c).astype(np.float32)
    shift = rng.uniform(-1, 1, c).astype(np.float32)
    cval = -7.5
    want = expected_warp(x, index, matrix, scale, shift, fill_mode, cval)
    tol = warp_tolerance(x, scale, shift, cval)
    for name in ("affine_warp", "affine_warp_reference"):
        got = getattr(_C, name)(x, index, matrix, scale, shift, fill_mode, cval)
        assert_within(got, want, tol, f"{name} {fill_mode}", dtype=np.float32)


def test_affine_warp_identity_copies_exactly():
    x = images((4, 7, 5, 3), np.uint8)
    index = np.array([3, 0, 0, 2], np.int64)
    identity = np.tile([1.0, 0, 0, 0, 1.0, 0], (4, 1))
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    for mode in FILL_MODES:
        got = _C.affine_warp(x, index, identity, one, zero, mode, 0.0)
        np.testing.assert_array_equal(got, x[index].astype(np.float32))


def test_affine_warp_fill_modes_by_hand():
    # one row abcd = 1 2 3 4, moved right by 2 and by 2.5 pixels
    x = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 4, 1)
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
    want = {"nearest": ([1, 1, 1, 2], [1, 1, 1, 1.5]),
            "constant": ([9, 9, 1, 2], [9, 9, 5, 1.5]),
            "reflect": ([2, 1, 1, 2], [2.5, 1.5, 1, 1.5]),
            "wrap": ([3, 4, 1, 2], [2.5, 3.5, 2.5, 1.5])}
    for mode, rows in want.items():
        for move, row in zip((2.0, 2.5), rows):
            m = np.array([[1.0, 0, 0, 0, 1.0, -move]])
            got = _C.affine_warp(x, np.zeros(1, np.int64), m, one, zero, mode, 9.0)
            np.testing.assert_allclose(got.ravel(), row, err_msg=f"{mode}, moved by {move}")


def test_affine_warp_same_bits_for_1_and_2_threads():
    x = images((64, 32, 32, 3), np.uint8, seed=3)
    rng = np.random.default_rng(4)
    index = rng.integers(0, 64, 64).astype(np.int64)
    matrix = random_matrices(rng, 64, 32, 32)
    args = (x, index, matrix, np.full(3, 0.5, np.float32), np.full(3, -1, np.float32))
    for mode in FILL_MODES:
        with num_threads(1):
            one = _C.affine_warp(*args, mode, 2.0)
        with num_threads(2):
            two = _C.affine_warp(*args, mode, 2.0)
        assert one.tobytes() == two.tobytes(), mode


def test_affine_warp_empty_batch_and_images():
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    x = images((2, 4, 4, 3), np.uint8)
    got = _C.affine_warp(x, np.zeros(0, np.int64), np.zeros((0, 6)), one, zero, "nearest", 0.0)
    assert got.shape == (0, 4, 4, 3) and got.dtype == np.float32
    x0 = np.zeros((2, 0, 4, 3), np.float32)
    got = _C.affine_warp(x0, np.zeros(2, np.int64), np.zeros((2, 6)), one, zero, "wrap", 0.0)
    assert got.shape == (2, 0, 4, 3)


def test_affine_warp_bad_input():
    x = images((2, 4, 4, 3), np.uint8)
    idx = np.zeros(1, np.int64)
    m = np.array([[1.0, 0, 0, 0, 1, 0]])
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    cases = [
        ((x[0], idx, m, one, zero, "nearest", 0.0), ValueError, "'x' must be 4-D"),
        ((x.astype(np.int16), idx, m, one, zero, "nearest", 0.0), TypeError, "'x' must be uint8"),
        ((x, np.array([2], np.int64), m, one, zero, "nearest", 0.0), ValueError, "'index'"),
        ((x, np.array([-1], np.int64), m, one, zero, "nearest", 0.0), ValueError, "'index'"),
        ((x, idx.astype(np.int32), m, one, zero, "nearest", 0.0), TypeError, "'index'"),
        ((x, idx, np.zeros((1, 5)), one, zero, "nearest", 0.0), ValueError,
         r"'matrix' must have shape \(1, 6\)"),
        ((x, idx, np.array([[np.nan, 0, 0, 0, 1, 0]]), one, zero, "nearest", 0.0), ValueError,
         "'matrix'"),
        ((x, idx, np.array([[1e300, 0, 0, 0, 1, 0]]), one, zero, "nearest", 0.0), ValueError,
         "'matrix'"),
        ((x, idx, m, np.ones(2, np.float32), zero, "nearest", 0.0), ValueError, "'scale'"),
        ((x, idx, m, one, zero.astype(np.float64), "nearest", 0.0), TypeError, "'shift'"),
        ((x, idx, m, one, zero, "mirror", 0.0), ValueError, "'fill_mode'"),
        ((x, idx, m, one, zero, "constant", float("inf")), ValueError, "'cval'"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            _C.affine_warp(*args)


# ================================================================ transforms

PARAMS = [
    {"theta": 12.5},
    {"theta": -170.0},
    {"tx": 2.25},
    {"ty": -3.5},
    {"tx": -1.0, "ty": 4.0, "theta": 30.0},
    {"shear": 20.0},
    {"zx": 0.7, "zy": 1.3},
    {"flip_horizontal": True},
    {"flip_vertical": True},
    {"theta": 7.0, "tx": 1.5, "ty": -2.5, "shear": -10.0, "zx": 1.2, "zy": 0.9,
     "flip_horizontal": True, "flip_vertical": True},
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(f"{k}" for k in p))
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_apply_transform_matches_keras_composition(params, fill_mode):
    gen = ImageDataGenerator(fill_mode=fill_mode, cval=3.0)
    for shape in [(9, 7, 3), (16, 16, 1), (5, 11, 4)]:
        x = images((1,) + shape, np.float32, seed=sum(shape))[0]
        got = gen.apply_transform(x, params)
        want = ref.transform(x, params, fill_mode, 3.0)
        assert_within(got, want, warp_tolerance(x, np.ones(1), np.zeros(1), 3.0),
                      f"{params} {fill_mode} {shape}", dtype=np.float32)


def test_rotation_turns_clockwise_and_shifts_move_up_left():
    # a dot above the centre of a 9 x 9 image
    x = np.zeros((9, 9, 1), np.float32)
    x[1, 4] = 1
    gen = ImageDataGenerator(fill_mode="constant")
    assert np.unravel_index(gen.apply_transform(x, {"theta": 90}).argmax(), x.shape) == (4, 7, 0)
    # tx along rows, ty along columns; content moves against the shift
    assert np.unravel_index(gen.apply_transform(x, {"tx": 1}).argmax(), x.shape) == (0, 4, 0)
    assert np.unravel_index(gen.apply_transform(x, {"ty": 2}).argmax(), x.shape) == (1, 2, 0)
    y = gen.apply_transform(x, {"flip_vertical": True})
    assert np.unravel_index(y.argmax(), x.shape) == (7, 4, 0)


def draws(gen, shape, n=400):
    ps = [gen.get_random_transform(shape, seed=s) for s in range(n)]
    return {k: np.array([p[k] for p in ps]) for k in ps[0]}


def test_random_parameters_follow_keras_ranges():
    shape = (20, 30, 3)
    d = draws(ImageDataGenerator(rotation_range=15, width_shift_range=0.1,
                                 height_shift_range=0.2, shear_range=5, zoom_range=0.25,
                                 horizontal_flip=True), shape)
    assert np.abs(d["theta"]).max() <= 15 and np.abs(d["theta"]).max() > 13
    assert np.abs(d["ty"]).max() <= 0.1 * 30 and np.abs(d["ty"]).max() > 2.5  # fraction of W
    assert np.abs(d["tx"]).max() <= 0.2 * 20 and np.abs(d["tx"]).max() > 3.5  # fraction of H
    assert np.abs(d["shear"]).max() <= 5
    assert 0.75 <= d["zx"].min() and d["zx"].max() <= 1.25 and not np.all(d["zx"] == d["zy"])
    assert 0.35 < d["flip_horizontal"].mean() < 0.65 and not d["flip_vertical"].any()
    # no spread where no range is given
    d = draws(ImageDataGenerator(), shape, 20)
    assert not np.any(d["theta"]) and not np.any(d["tx"]) and np.all(d["zx"] == 1)


def test_shift_ranges_in_pixels_ints_and_lists():
    shape = (20, 30, 3)
    ty = draws(ImageDataGenerator(width_shift_range=2.5), shape)["ty"]  # float >= 1: pixels
    assert np.abs(ty).max() <= 2.5 and np.abs(ty).max() > 2.2 and np.any(ty != np.round(ty))
    ty = draws(ImageDataGenerator(width_shift_range=3), shape)["ty"]  # int: whole pixels in (-3, 3)
    assert set(np.unique(ty)) == {-2, -1, 0, 1, 2}
    ty = draws(ImageDataGenerator(width_shift_range=[0.1, 0.2]), shape)["ty"]  # fractions of W
    assert set(np.round(np.unique(ty), 9)) == {-6, -3, 3, 6}
    tx = draws(ImageDataGenerator(height_shift_range=[2, 5]), shape)["tx"]  # pixels
    assert set(np.unique(tx)) == {-5, -2, 2, 5}


def test_random_transform_is_repeatable_with_a_seed():
    gen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2, horizontal_flip=True)
    x = images((1, 12, 10, 3), np.uint8)[0]
    a, b = gen.random_transform(x, seed=5), gen.random_transform(x, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gen.random_transform(x, seed=6))
    assert_within(a, ref.transform(x, gen.get_random_transform(x.shape, seed=5)),
                  warp_tolerance(x, np.ones(1), np.zeros(1), 0), dtype=np.float32)


# ================================================================ flow

def augmenting():
    return ImageDataGenerator(rotation_range=20, width_shift_range=0.15, height_shift_range=2,
                              horizontal_flip=True, vertical_flip=True, zoom_range=0.1,
                              shear_range=4, fill_mode="reflect")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64], ids=str)
def test_flow_batches_are_the_reference_transforms_of_their_images(dtype):
    gen = augmenting()
    x = images((23, 9, 8, 3), np.float32 if dtype == np.float64 else dtype).astype(dtype)
    y = np.arange(23) * 10
    it = gen.flow(x, y, batch_size=7, seed=11)
    for i in range(len(it)):
        index, params = it._batch_params(i)
        xb, yb = it[i]
        assert xb.dtype == np.float32 and xb.shape == (len(index), 9, 8, 3)
        np.testing.assert_array_equal(yb, y[index])
        for k, j in enumerate(index):
            p = {key: v[k] for key, v in params.items()}
            want = ref.transform(x[j], p, "reflect")
            assert_within(xb[k], want, warp_tolerance(x, np.ones(1), np.zeros(1), 0),
                          f"batch {i} image {k}")


def test_flow_covers_every_image_once_per_epoch_and_reshuffles():
    x = images((50, 4, 4, 1), np.uint8)
    it = ImageDataGenerator().flow(x, np.arange(50), batch_size=16, seed=0)
    assert len(it) == 4
    epochs = []
    for _ in range(3):
        batches = [next(it) for _ in range(len(it))]
        assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
        order = np.concatenate([b[1] for b in batches])
        assert sorted(order) == list(range(50))
        for xb, yb in batches:  # no transform: the images themselves
            np.testing.assert_array_equal(xb, x[yb].astype(np.float32))
        epochs.append(order)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])


def test_flow_is_deterministic_given_the_seed():
    x = images((30, 8, 8, 3), np.uint8)
    y = np.arange(30)

    def run(seed, gen=None):
        it = (gen or augmenting()).flow(x, y, batch_size=8, seed=seed)
        return [next(it) for _ in range(2 * len(it))]

    a, b, c = run(3), run(3), run(4)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    # no seed: fastnn.manual_seed decides
    fastnn.manual_seed(9)
    d = run(None)
    fastnn.manual_seed(9)
    e = run(None)
    assert all(np.array_equal(xd, xe) for (xd, _), (xe, _) in zip(d, e))


def test_flow_results_do_not_depend_on_the_thread_count():
    x = images((70, 32, 32, 3), np.uint8)
    with num_threads(1):
        one = augmenting().flow(x, batch_size=64, seed=1)[0]
    with num_threads(2):
        two = augmenting().flow(x, batch_size=64, seed=1)[0]
    assert one.tobytes() == two.tobytes()


def test_flow_without_shuffle_keeps_order_and_without_y_yields_images():
    x = images((10, 3, 3, 2), np.float32)
    it = ImageDataGenerator().flow(x, batch_size=4, shuffle=False)
    batches = [next(it) for _ in range(len(it))]
    assert all(isinstance(b, np.ndarray) for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), x)
    assert len(ImageDataGenerator().flow(x, batch_size=100)) == 1
    assert len(ImageDataGenerator().flow(x[:0], batch_size=4)) == 0
    with pytest.raises(IndexError):
        it[3]


def test_flow_accepts_one_hot_targets():
    x = images((6, 4, 4, 3), np.uint8)
    y = np.eye(6)[::-1]
    xb, yb = ImageDataGenerator().flow(x, y, batch_size=6, shuffle=False)[0]
    np.testing.assert_array_equal(yb, y)


# ================================================================ feature-wise statistics

def test_fit_computes_per_channel_mean_and_std():
    x = images((37, 6, 5, 3), np.uint8, seed=2)
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True)
    gen.fit(x)
    want_mean = x.astype(np.float64).mean(axis=(0, 1, 2))
    want_std = x.astype(np.float64).std(axis=(0, 1, 2))
    assert gen.mean.shape == (1, 1, 3) and gen.std.shape == (1, 1, 3)
    assert_within(gen.mean.ravel(), want_mean, 1e-6 * want_mean, "mean")
    assert_within(gen.std.ravel(), want_std, 1e-6 * want_std, "std")
    want = ref.standardize(x, gen.mean, gen.std)
    got = gen.standardize(x)
    assert_within(got, want, 1e-5 * np.abs(want).max(), "standardize", dtype=np.float32)
    xb = gen.flow(x, batch_size=37, shuffle=False)[0]
    assert_within(xb, want, 1e-5 * np.abs(want).max(), "flow", dtype=np.float32)


@pytest.mark.parametrize("center,normalize", [(True, False), (False, True)])
def test_centre_and_normalisation_apply_alone(center, normalize):
    x = images((12, 4, 4, 2), np.float32, seed=3) + 5
    gen = ImageDataGenerator(featurewise_center=center, featurewise_std_normalization=normalize)
    gen.fit(x)
    want = ref.standardize(x, gen.mean if center else None, gen.std if normalize else None)
    got = gen.flow(x, batch_size=12, shuffle=False)[0]
    assert_within(got, want, 1e-5 * np.abs(want).max(), dtype=np.float32)


def test_fit_with_augmentation_is_seeded():
    x = images((20, 8, 8, 3), np.uint8)
    gen = augmenting()
    gen.featurewise_center = True
    a = gen.fit(x, augment=True, rounds=2, seed=1).mean.copy()
    b = gen.fit(x, augment=True, rounds=2, seed=1).mean.copy()
    c = gen.fit(x).mean.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_featurewise_options_need_fit_first():
    x = images((4, 4, 4, 3), np.uint8)
    gen = ImageDataGenerator(featurewise_center=True)
    with pytest.raises(ValueError, match="fit"):
        gen.flow(x)
    with pytest.raises(ValueError, match="fit"):
        gen.standardize(x)
    gen.fit(x)
    with pytest.raises(ValueError, match="channels"):
        gen.flow(images((4, 4, 4, 1), np.uint8))


# ================================================================ DataLoader

def test_dataloader_batches_cover_the_data_and_reshuffle():
    x = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    loader = DataLoader(x, y, batch_size=5, seed=0)
    assert len(loader) == 5
    orders = []
    for _ in range(2):
        batches = list(loader)
        assert [len(b) for _, b in batches] == [5, 5, 5, 5, 3]
        for xb, yb in batches:
            np.testing.assert_array_equal(xb, x[yb])
        order = np.concatenate([yb for _, yb in batches])
        assert sorted(order) == list(range(23))
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])
    # the same seed, the same epochs
    again = DataLoader(x, y, batch_size=5, seed=0)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in again]), orders[0])


def test_dataloader_drop_last_no_shuffle_and_no_targets():
    x = np.arange(10, dtype=np.float32)
    loader = DataLoader(x, batch_size=4, shuffle=False, drop_last=True)
    assert len(loader) == 2
    batches = list(loader)
    np.testing.assert_array_equal(np.concatenate(batches), x[:8])
    assert len(DataLoader(x, batch_size=4)) == 3
    assert len(DataLoader(x, batch_size=20, drop_last=True)) == 0


# ================================================================ bad input

def test_bad_input_names_the_argument():
    x = images((4, 5, 5, 3), np.uint8)
    gen = ImageDataGenerator()
    cases = [
        (lambda: gen.flow(x[0]), ValueError, r"'x' must be 4-D.*\(5, 5, 3\)"),
        (lambda: gen.flow(x, np.arange(3)), ValueError, r"'y'.*4 images.*\(3,\)"),
        (lambda: gen.flow(x, batch_size=0), ValueError, "'batch_size'"),
        (lambda: gen.flow(x, batch_size=2.5), TypeError, "'batch_size'"),
        (lambda: gen.flow(x, seed="a"), TypeError, "'seed'"),
        (lambda: gen.flow(np.array([["a"]] * 4)), TypeError, "'x'"),
        (lambda: gen.fit(x[0]), ValueError, r"'x' must be 4-D"),
        (lambda: gen.random_transform(x), ValueError, r"'x' must be 3-D"),
        (lambda: gen.apply_transform(x[0], [1]), TypeError, "'transform_parameters'"),
        (lambda: ImageDataGenerator(fill_mode="mirror"), ValueError, "'fill_mode'"),
        (lambda: ImageDataGenerator(rotation_range=-1), ValueError, "'rotation_range'"),
        (lambda: ImageDataGenerator(rotation_range=math.nan), ValueError, "'rotation_range'"),
        (lambda: ImageDataGenerator(width_shift_range="a"), TypeError, "'width_shift_range'"),
        (lambda: ImageDataGenerator(height_shift_range=[[1]]), ValueError,
         "'height_shift_range'"),
        (lambda: ImageDataGenerator(zoom_range=[1, 2, 3]), ValueError, "'zoom_range'"),
        (lambda: ImageDataGenerator(zoom_range=1.5), ValueError, "'zoom_range'"),
        (lambda: ImageDataGenerator(horizontal_flip=1), TypeError, "'horizontal_flip'"),
        (lambda: ImageDataGenerator(cval=None), TypeError, "'cval'"),
        (lambda: DataLoader(x, np.arange(5)), ValueError, r"'y'.*\(5,\)"),
        (lambda: DataLoader(np.float32(1)), ValueError, "'x'"),
        (lambda: DataLoader(x, batch_size=-1), ValueError, "'batch_size'"),
    ]
    for make, error, match in cases:
        with pytest.raises(error, match=match):
            make()
