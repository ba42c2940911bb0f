"""The CUDA GEMM against a float64 NumPy reference, and the CUDA module's
behaviour on a machine without a GPU (those tests always run)."""
import numpy as np
import pytest

from fastnn import cuda, kernels

needs_gpu = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU available")


# ---------------------------------------------------------------- always run

@pytest.mark.skipif(cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_device_count_is_zero_and_gpu_calls_raise_runtime_error():
    assert cuda.device_count() == 0
    assert not cuda.is_device_array(np.ones((2, 2), np.float32))
    with pytest.raises(RuntimeError, match="to_device"):
        cuda.to_device(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="synchronize"):
        cuda.synchronize()
    if cuda.is_built():  # the module itself says 0 and raises, never crashes
        from fastnn import _C_cuda
        assert _C_cuda.device_count() == 0
        assert _C_cuda.init_error() != ""
        with pytest.raises(RuntimeError):
            _C_cuda.DeviceArray.from_numpy(np.ones(3, np.float32))


@pytest.mark.skipif(not cuda.is_built(), reason="built without CUDA")
def test_module_checks_arguments_before_it_touches_a_device():
    """These fail the same way with or without a GPU."""
    from fastnn import _C_cuda
    huge = np.broadcast_to(np.float64(1.0), (1 << 48,))  # 1 PiB once converted
    with pytest.raises(MemoryError):  # NumPy's own error, raised as it is
        _C_cuda.DeviceArray.from_numpy(huge)
    with pytest.raises(TypeError, match="'x' must be an array of numbers, got dtype <U1"):
        _C_cuda.DeviceArray.from_numpy(np.array(["a"]))
    with pytest.raises(TypeError, match="'shape' must hold ints, got float"):
        _C_cuda.DeviceArray.zeros((np.int64(2), 3.0))
    with pytest.raises(TypeError, match="'shape' must be an int or a tuple of ints, got str"):
        _C_cuda.DeviceArray.empty("3")
    with pytest.raises(ValueError, match="'shape' must not be negative, got \\(2, -1\\)"):
        _C_cuda.DeviceArray.zeros((np.int32(2), np.int64(-1)))
    with pytest.raises(ValueError, match="too large"):
        _C_cuda.DeviceArray.empty(2 ** 70)


# ---------------------------------------------------------------- helpers

def _operands(rng, m, k, n, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


def _check(got, a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c0=None):
    """got against float64, within a bound that float32 rounding cannot exceed
    (about K units in the last place of |alpha| |A||B| + |beta C|): an indexing
    or synchronisation error is far outside it."""
    a64 = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    ref = alpha * (a64 @ b64)
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0.0:
        ref += beta * c0.astype(np.float64)
        scale += abs(beta) * np.abs(c0.astype(np.float64))
    k = a64.shape[1]
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.all(np.isfinite(got))
    err = np.abs(got.astype(np.float64) - ref)
    tol = (k + 4) * 2.0 ** -23 * scale + 1e-30
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else None
    assert np.all(err <= tol), (
        f"max error {err.max()} at {worst}: got {got[worst]}, expected {ref[worst]}")


SHAPES = [  # (M, K, N): ones, zeros, primes, tall-skinny, tile edges
    (1, 1, 1), (0, 5, 3), (5, 0, 3), (3, 5, 0), (0, 0, 0), (1, 7, 1), (7, 1, 13),
    (13, 17, 19), (31, 37, 41), (127, 129, 131), (128, 8, 128), (129, 9, 127),
    (1000, 3, 7), (3, 1000, 5), (2, 7, 1000), (257, 300, 129), (1031, 61, 263),
]
LAYER_SHAPES = [(64, 2048, 512), (64, 512, 10), (4096, 27, 32), (16384, 288, 64)]
TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


# ---------------------------------------------------------------- GPU tests

@needs_gpu
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
@pytest.mark.parametrize("m,k,n", SHAPES + LAYER_SHAPES)
def test_gemm_matches_float64_reference(m, k, n, trans_a, trans_b):
    rng = np.random.default_rng(m * 1_000_003 + k * 1009 + n)
    a, b = _operands(rng, m, k, n, trans_a, trans_b)
    c = cuda.gemm(cuda.to_device(a), cuda.to_device(b), trans_a=trans_a, trans_b=trans_b)
    assert cuda.is_device_array(c) and c.shape == (m, n)
    _check(c.numpy(), a, b, trans_a, trans_b)


@needs_gpu
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_gemm_2048_square(trans_a, trans_b):
    rng = np.random.default_rng(2048)
    a, b = _operands(rng, 2048, 2048, 2048, trans_a, trans_b)
    c = cuda.gemm(cuda.to_device(a), cuda.to_device(b), trans_a=trans_a, trans_b=trans_b)
    _check(c.numpy(), a, b, trans_a, trans_b)


@needs_gpu
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-0.5, 2.0), (2.0, -1.5), (0.0, 0.5),
                                        (0.0, 0.0)])
@pytest.mark.parametrize("m,k,n", [(33, 19, 65), (200, 130, 150), (1, 64, 300)])
def test_gemm_alpha_beta_update_c_in_place(m, k, n, alpha, beta, trans_a, trans_b):
    rng = np.random.default_rng(7)
    a, b = _operands(rng, m, k, n, trans_a, trans_b)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = cuda.to_device(c0)
    out = kernels.gemm(cuda.to_device(a), cuda.to_device(b), trans_a=trans_a, trans_b=trans_b,
                       alpha=alpha, beta=beta, c=c)
    assert out is c
    _check(c.numpy(), a, b, trans_a, trans_b, alpha, beta, c0)


@needs_gpu
@pytest.mark.parametrize("m,k,n", [(5, 0, 7), (70, 0, 300), (64, 16, 64), (130, 3, 129)])
def test_beta_zero_never_reads_c(m, k, n):
    rng = np.random.default_rng(3)
    a, b = _operands(rng, m, k, n, False, False)
    c = cuda.to_device(np.full((m, n), np.nan, np.float32))
    cuda.gemm(cuda.to_device(a), cuda.to_device(b), beta=0.0, c=c)
    _check(c.numpy(), a, b, False, False)


@needs_gpu
def test_k_zero_scales_c_by_beta():
    c0 = np.arange(12, dtype=np.float32).reshape(3, 4)
    c = cuda.to_device(c0)
    a, b = cuda.to_device(np.zeros((3, 0))), cuda.to_device(np.zeros((0, 4)))
    cuda.gemm(a, b, alpha=3.0, beta=-2.0, c=c)
    np.testing.assert_array_equal(c.numpy(), -2.0 * c0)


@needs_gpu
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_c_may_be_an_operand(trans_a, trans_b):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((67, 67)).astype(np.float32)
    b = rng.standard_normal((67, 67)).astype(np.float32)
    da, db = cuda.to_device(a), cuda.to_device(b)
    cuda.gemm(da, db, trans_a=trans_a, trans_b=trans_b, beta=0.5, c=da)
    _check(da.numpy(), a, b, trans_a, trans_b, 1.0, 0.5, a)
    cuda.gemm(db, db, trans_a=trans_a, trans_b=trans_b, c=db)
    _check(db.numpy(), b, b, trans_a, trans_b)


@needs_gpu
def test_kernels_gemm_forwards_device_arrays_and_results_stay_on_the_gpu():
    rng = np.random.default_rng(5)
    a, b = _operands(rng, 40, 50, 60, False, False)
    c = kernels.gemm(cuda.to_device(a), cuda.to_device(b))
    assert cuda.is_device_array(c)
    _check(cuda.to_host(c), a, b, False, False)
    cuda.synchronize()


@needs_gpu
@pytest.mark.parametrize("x", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.arange(24, dtype=np.float64).reshape(2, 3, 4),      # converted to float32
    np.arange(20, dtype=np.int64).reshape(4, 5)[:, ::2],   # non-contiguous, integer
    np.zeros((0, 3), np.float32),
    np.float32(2.5),                                       # 0-d stays 0-d
    np.arange(6, dtype=">f4").reshape(2, 3),               # byte-swapped float32
    np.arange(12, dtype=">f4").reshape(3, 4)[::2, ::3],    # byte-swapped, strided
    [[1, 2], [3, 4]],
])
def test_to_device_round_trip(x):
    expected = np.asarray(x).astype(np.float32, order="C")
    d = cuda.to_device(x)
    assert cuda.is_device_array(d)
    assert d.shape == expected.shape and d.dtype == np.float32 and d.ndim == expected.ndim
    assert d.size == expected.size and d.nbytes == expected.nbytes
    back = d.numpy()
    assert back.dtype == np.float32 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, expected)
    assert cuda.to_device(d) is d
    assert "DeviceArray" in repr(d)


@needs_gpu
@pytest.mark.parametrize("x", [np.arange(6, dtype=">f4").reshape(2, 3),
                               np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2],
                               np.arange(4, dtype=">f8")])
def test_from_numpy_converts_byte_swapped_input_to_native(x):
    """The module itself, without the Python-side conversion in to_device."""
    from fastnn import _C_cuda
    np.testing.assert_array_equal(_C_cuda.DeviceArray.from_numpy(x).numpy(),
                                  x.astype(np.float32))


@needs_gpu
@pytest.mark.parametrize("shape,expected", [
    (np.int64(4), (4,)), ((np.int64(3), np.int32(2)), (3, 2)), (np.array([2, 3]), (2, 3)),
    (np.array(5), (5,)), ([np.uint8(1), 0], (1, 0)), ((), ()),
])
def test_device_array_shapes_accept_any_integer(shape, expected):
    assert cuda.DeviceArray.zeros(shape).shape == expected
    assert cuda.DeviceArray.empty(shape).shape == expected


@needs_gpu
def test_device_array_factories():
    z = cuda.DeviceArray.zeros((3, 5))
    np.testing.assert_array_equal(z.numpy(), np.zeros((3, 5), np.float32))
    assert cuda.DeviceArray.empty(7).shape == (7,)
    with pytest.raises(ValueError, match="shape"):
        cuda.DeviceArray.zeros((2, -1))
    with pytest.raises(TypeError, match="shape"):
        cuda.DeviceArray.zeros("3")
    with pytest.raises(TypeError, match="'shape' must hold ints, got float"):
        cuda.DeviceArray.zeros((2.0, 3))
    with pytest.raises(ValueError, match="too large"):
        cuda.DeviceArray.zeros((2 ** 70,))
    props = cuda.get_device_properties(0)
    assert props["multiprocessors"] > 0 and isinstance(props["name"], str)


@needs_gpu
def test_bad_input_raises_errors_naming_the_argument():
    d2 = cuda.to_device(np.ones((3, 4)))
    d1 = cuda.to_device(np.ones(4))
    d3 = cuda.to_device(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"'a' must be 2-D, got shape \(4,\)"):
        cuda.gemm(d1, d2)
    with pytest.raises(ValueError, match=r"'b' must be 2-D, got shape \(2, 3, 4\)"):
        cuda.gemm(d2, d3)
    with pytest.raises(ValueError, match=r"inner dimensions differ.*\(3, 4\).*\(3, 4\)"):
        cuda.gemm(d2, d2)
    with pytest.raises(ValueError, match=r"'c' must have shape \(3, 3\), got \(3, 4\)"):
        cuda.gemm(d2, d2, trans_b=True, c=d2)
    with pytest.raises(TypeError, match="'b' is a NumPy array on the host but 'a' is on the GPU"):
        kernels.gemm(d2, np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match="'a' is a NumPy array on the host but 'b' and 'c'"):
        kernels.gemm(np.ones((3, 4), np.float32), cuda.to_device(np.ones((4, 2))),
                     c=cuda.to_device(np.ones((3, 2))))
    with pytest.raises(TypeError, match="'c' is a NumPy array"):
        kernels.gemm(d2, d2, trans_b=True, c=np.ones((3, 3), np.float32))
    with pytest.raises(TypeError, match="'alpha' must be a real number"):
        cuda.gemm(d2, d2, trans_b=True, alpha="2")
    with pytest.raises(TypeError, match="'x' must be an array of numbers"):
        cuda.to_device(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="'x' must be an array of numbers"):
        cuda.to_device(np.array([{}, 1], dtype=object))


@pytest.mark.skipif(cuda.device_count() < 2, reason="needs two GPUs")
def test_gemm_rejects_operands_on_different_devices():
    from fastnn import _C_cuda
    d0 = cuda.to_device(np.ones((3, 3)))
    _C_cuda.set_device(1)
    try:
        d1 = cuda.to_device(np.ones((3, 3)))
    finally:
        _C_cuda.set_device(0)
    with pytest.raises(ValueError, match="different devices"):
        cuda.gemm(d0, d1)
    with pytest.raises(ValueError, match="'c' is on cuda:1"):
        cuda.gemm(d0, d0, c=d1)
    # the operands' device, not the current one, runs the product; the
    # current device is the caller's again afterwards
    _C_cuda.set_device(1)
    try:
        c = cuda.gemm(d0, d0)
        assert _C_cuda.current_device() == 1
    finally:
        _C_cuda.set_device(0)
    assert c.device == "cuda:0"
    np.testing.assert_array_equal(c.numpy(), np.full((3, 3), 3, np.float32))


@needs_gpu
def test_gemm_leaves_the_current_device_as_it_was():
    from fastnn import _C_cuda
    before = _C_cuda.current_device()
    d = cuda.to_device(np.ones((4, 4)))
    cuda.gemm(d, d)
    cuda.gemm(d, d, beta=1.0, c=d)
    assert _C_cuda.current_device() == before
    with pytest.raises(ValueError, match="out of range"):
        _C_cuda.set_device(cuda.device_count())


@needs_gpu
def test_module_checks_shapes_itself():
    """The bindings check again, so a direct call can't reach the kernel with bad shapes."""
    from fastnn import _C_cuda
    d2 = cuda.to_device(np.ones((3, 4)))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        _C_cuda.gemm(d2, d2, False, False, 1.0, 0.0, None)
    with pytest.raises(ValueError, match="'c' must have shape"):
        _C_cuda.gemm(d2, d2, False, True, 1.0, 0.0, d2)
    with pytest.raises(TypeError, match="'b' must be a DeviceArray"):
        _C_cuda.gemm(d2, np.ones((4, 4), np.float32), False, False, 1.0, 0.0, None)
