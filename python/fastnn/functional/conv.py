"""Convolution and pooling of NHWC images."""
from .. import _checks
from ..autograd import Deferred
from ._plumbing import _mode, _record, _tensor, _wrap, _xp

__all__ = ["avg_pool2d", "conv2d", "max_pool2d"]


def _image(x, fn):
    """x as a tensor; ValueError unless it is 4-D."""
    x = _tensor(x, fn)
    if x._data.ndim != 4:
        raise ValueError(f"{fn}: argument 'x' must be 4-D (N, H, W, C), got shape "
                         f"{tuple(x._data.shape)}")
    return x


def conv2d(x, w, b=None, stride=1, padding="valid", dilation=1, activation=None):
    """2-D convolution of NHWC images with an HWIO kernel (Keras's layouts):
    (N, H, W, C) * (KH, KW, C, F) -> (N, OH, OW, F), plus b (F,).
    padding: "valid", "same" (Keras's rule: output = ceil(input / stride)) or
    an int / (ph, pw); stride and dilation: an int or (sh, sw).
    activation="relu" fuses the ReLU into the kernel. Computes in float32."""
    relu = _checks.fused_relu(activation, "conv2d")
    x = _image(x, "conv2d")
    w = _tensor(w, "conv2d", "w")
    b = None if b is None else _tensor(b, "conv2d", "b")
    xp = _xp("conv2d", x, w, b)
    dx, dw = xp.kernel_input(x._data), xp.kernel_input(w._data)
    db = None if b is None else xp.kernel_input(b._data)
    window = _checks.conv_window(stride, padding, dilation, "conv2d")
    out = xp.conv2d(dx, dw, db, *window, relu)
    if not (_mode.enabled and (x._rg or w._rg or (b is not None and b._rg))):
        return _wrap(out)

    def backward(g):
        need = (x._rg, w._rg, b is not None and b._rg)
        if type(g) is Deferred:  # from the max pool right after: through both in one pass
            assert g.kind == "max_pool2d", g.kind  # the only op that offers one here
            p, dp, kh, kw = g.args
            gx, gw, gb = xp.conv2d_pool_backward(dx, dw, out, p, dp, kh, kw, *window, *need)
        else:  # the fused ReLU's gradient (g where out > 0) is taken inside the kernel
            gx, gw, gb = xp.conv2d_backward(dx, dw, xp.kernel_input(g), *window, *need,
                                            y=out if relu else None)
        return (gx, gw) if b is None else (gx, gw, gb)
    # a max pool of this output may hand its gradient over unmade (max_pool2d)
    backward.takes_deferred = relu and hasattr(xp, "conv2d_pool_backward")
    return _record(out, (x, w) if b is None else (x, w, b), backward, "Conv2dBackward")


def _conv2d_relu_max_pool(x, w, b, stride, padding, dilation, pool_size):
    """max_pool2d(conv2d(x, w, b, stride, padding, dilation, activation="relu"),
    pool_size) as one op, for a pool whose windows tile the convolution's
    output (strides = pool_size, "valid"): the convolution's output is
    pooled as it is computed and not kept, and the backward goes through
    the pool, the ReLU and the convolution in one pass. None where it cannot
    run (not on the CPU, or the pool does not fit the output): then the two
    ops are for the caller to run."""
    x = _image(x, "conv2d")
    w = _tensor(w, "conv2d", "w")
    b = None if b is None else _tensor(b, "conv2d", "b")
    xp = _xp("conv2d", x, w, b)
    if not hasattr(xp, "conv2d_relu_max_pool"):
        return None
    window = _checks.conv_window(stride, padding, dilation, "conv2d")
    kh, kw = _checks.pair(pool_size, "pool_size", "max_pool2d")
    oh, ow = _checks.conv_output_size(x._data.shape[1:3], w._data.shape[:2], window)
    if oh < kh or ow < kw or kh * kw > 255:
        return None
    dx, dw = xp.kernel_input(x._data), xp.kernel_input(w._data)
    db = None if b is None else xp.kernel_input(b._data)
    out, arg = xp.conv2d_relu_max_pool(dx, dw, db, *window, kh, kw)
    if not (_mode.enabled and (x._rg or w._rg or (b is not None and b._rg))):
        return _wrap(out)

    def backward(g):
        gx, gw, gb = xp.conv2d_pool_backward(dx, dw, None, out, xp.kernel_input(g), kh, kw,
                                             *window, x._rg, w._rg, b is not None and b._rg,
                                             arg=arg)
        return (gx, gw) if b is None else (gx, gw, gb)
    return _record(out, (x, w) if b is None else (x, w, b), backward, "Conv2dReluMaxPoolBackward")


def _pool(name, doc):
    label = "".join(p.capitalize() for p in name.split("_")) + "Backward"

    def op(x, pool_size=2, strides=None, padding="valid"):
        x = _image(x, name)
        xp = _xp(name, x)
        d = xp.kernel_input(x._data)
        window = _checks.pool_window(pool_size, strides, padding, name)
        forward, backward_kernel = getattr(xp, name), getattr(xp, name + "_backward")
        out = forward(d, *window)
        if not (_mode.enabled and x._rg):
            return _wrap(out)
        # the max pool's backward takes the forward's maxima rather than search again
        maxima = {"y": out} if name == "max_pool2d" else {}
        kh, kw, sh, sw, mode = window
        # after a convolution with a ReLU, windows that tile the image are left to the
        # convolution's backward (a Deferred gradient: see autograd)
        fuse = (maxima and x._node is not None and (kh, kw) == (sh, sw) and mode == "valid"
                and getattr(x._node.backward, "takes_deferred", False))

        def backward(g):
            g = xp.kernel_input(g)
            value = lambda: backward_kernel(d, g, *window, **maxima)  # noqa: E731
            return (Deferred(value, name, (out, g, kh, kw)) if fuse else value(),)
        return _record(out, (x,), backward, label)
    op.__name__ = name
    op.__doc__ = doc
    return op


max_pool2d = _pool("max_pool2d",
                   "The maximum over each window of NHWC images (strides default to the "
                   "pool size; padding 'valid' or 'same'); the gradient goes to each window's "
                   "first maximum.")
avg_pool2d = _pool("avg_pool2d",
                   "The mean over each window of NHWC images, counting only the real "
                   "(unpadded) cells, as Keras.")
