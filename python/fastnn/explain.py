"""Pictures of why a model decides what it does: where in an image its class
score is sensitive (``saliency``) and which places the last convolutional
features that drive the score look at (``grad_cam``).

    heat = fastnn.explain.grad_cam(model, x_test[:16])   # (16, 32, 32) in [0, 1]
    plt.imshow(x_test[0]); plt.imshow(heat[0], cmap="jet", alpha=0.4)

The class score is the model's output for the class, taken before the
softmax when the model ends in a ``Dense`` layer with ``activation="softmax"``
(the probability saturates near 0 and 1, its logit does not). The class is
the model's prediction for each image unless ``class_index`` names one: an
int for every image, or one int per image. The model runs in inference mode
(Dropout off, BatchNormalization's moving statistics), so each image's map
depends on that image alone.
"""
import numbers

import numpy as np

from . import functional as F
from . import nn
from .tensor import tensor

__all__ = ["grad_cam", "saliency"]


def saliency(model, x, class_index=None):
    """(N, H, W) float32 maps in [0, 1]: the largest |d score / d pixel| over
    the channels of each pixel (Simonyan et al., 2014), divided by each
    image's largest value (an all-zero gradient gives zeros).

    model: a model or module taking x; x: (N, H, W, C) images or (N, H, W)."""
    x = _images(x, "saliency")
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    with _inference(model):
        leaf = tensor(x, dtype=_dtype(model), device=_device(model), requires_grad=True)
        out, classes = _scores(layers, leaf, class_index, "saliency")
        out.backward(_one_hot(out, classes))
        grad = np.abs(_numpy(leaf.grad))
    if grad.ndim == 4:
        grad = grad.max(axis=3)
    return _normalise(grad)


def grad_cam(model, x, layer=None, class_index=None):
    """(N, H, W) float32 maps in [0, 1] at the input's size: Grad-CAM
    (Selvaraju et al., 2017). With A the output of ``layer`` (maps (h, w, K))
    and S the class score, each channel's weight is the mean of dS/dA_k over
    its map; the heat map is ReLU(sum_k weight_k A_k), divided by its largest
    value and resized to (H, W) bilinearly (pixel centres aligned, as image
    resizing does).

    model: a Sequential model (its layers run one by one); layer: a layer of
    it, its index, or its name (``layer.name``, as fastnn.keras names layers);
    default the last Conv2D. x: (N, H, W, C) images."""
    x = _images(x, "grad_cam")
    if x.ndim != 4:
        raise ValueError(f"grad_cam: argument 'x' must be images of shape (N, H, W, C), got "
                         f"shape {x.shape}")
    layers = _layers(model)
    cut = _layer_index(layers, layer)
    with _inference(model):
        h = tensor(x, dtype=_dtype(model), device=_device(model))
        for m in layers[:cut + 1]:
            h = m(h)
        if h.ndim != 4:
            raise ValueError(f"grad_cam: the chosen layer ({type(layers[cut]).__name__}) must "
                             f"give feature maps (N, h, w, K), got shape {h.shape}")
        # a leaf holding the layer's output, so its gradient is kept
        maps = tensor(_numpy(h), dtype=h.dtype, device=h.device, requires_grad=True)
        out, classes = _scores(layers[cut + 1:], maps, class_index, "grad_cam")
        out.backward(_one_hot(out, classes))
        a, g = _numpy(maps).astype(np.float64), _numpy(maps.grad).astype(np.float64)
    weights = g.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((weights * a).sum(axis=3), 0.0)
    return _normalise(_resize_bilinear(cam, x.shape[1:3]))


# ---------------------------------------------------------------- helpers
def _images(x, fn):
    if isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
        raise TypeError(f"{fn}: argument 'x' must be an array of images, got {type(x).__name__}")
    a = np.asarray(x)
    if a.dtype.kind not in "uif":
        raise TypeError(f"{fn}: argument 'x' must hold numbers, got dtype {a.dtype}")
    if a.ndim not in (3, 4) or a.shape[0] == 0:
        raise ValueError(f"{fn}: argument 'x' must be a non-empty batch (N, H, W, C) or "
                         f"(N, H, W), got shape {a.shape}")
    return a


def _layers(model):
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"grad_cam: argument 'model' must be a Sequential model (its layers "
                        f"run one by one), got {type(model).__name__}")
    return list(model)


def _layer_index(layers, layer):
    if layer is None:
        convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2D)]
        if not convs:
            raise ValueError("grad_cam: the model has no Conv2D layer; pass 'layer'")
        return convs[-1]
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers) - 1:
            raise ValueError(f"grad_cam: argument 'layer' must index one of the first "
                             f"{len(layers) - 1} layers, got {layer}")
        return int(layer) % len(layers)
    if isinstance(layer, str):
        names = [getattr(m, "name", None) for m in layers]
        if layer not in names:
            raise ValueError(f"grad_cam: no layer named {layer!r}; the layers are named "
                             f"{names}")
        return names.index(layer)
    for i, m in enumerate(layers):
        if m is layer:
            return i
    raise ValueError(f"grad_cam: argument 'layer' must be a layer of the model, its index or "
                     f"its name, got {layer!r}")


def _scores(layers, h, class_index, fn):
    """(class scores (N, classes), the class of each image)."""
    last = layers[-1] if layers else None
    for m in layers[:-1]:
        h = m(h)
    if isinstance(last, nn.Dense) and last.activation == "softmax":
        out = F.linear(h, last.kernel, last.bias)  # the logits
    elif last is not None:
        out = last(h)
    else:
        out = h
    if out.ndim != 2:
        raise ValueError(f"{fn}: the model must give scores of shape (N, classes), got "
                         f"{out.shape}")
    n, k = out.shape
    if class_index is None:
        return out, _numpy(out).argmax(axis=1)
    classes = np.asarray(class_index)
    if classes.dtype.kind not in "iu" or classes.shape not in ((), (n,)):
        raise ValueError(f"{fn}: argument 'class_index' must be an int or {n} ints, got "
                         f"{class_index!r}")
    if classes.size and (classes.min() < 0 or classes.max() >= k):
        raise ValueError(f"{fn}: argument 'class_index' must be in [0, {k}), got "
                         f"{class_index!r}")
    return out, np.broadcast_to(classes, (n,))


def _one_hot(out, classes):
    g = np.zeros(out.shape, out.dtype)
    g[np.arange(len(classes)), classes] = 1
    return tensor(g, dtype=out.dtype, device=out.device)


def _normalise(maps):
    """Each map divided by its largest value; all-zero maps stay zero."""
    top = maps.reshape(len(maps), -1).max(axis=1)
    scale = np.where(top > 0, 1.0 / np.where(top > 0, top, 1.0), 0.0)
    return (maps * scale[:, None, None]).astype(np.float32)


def _resize_bilinear(maps, size):
    """(N, h, w) -> (N, H, W): bilinear with pixel centres aligned
    (source coordinate (i + 0.5) * h / H - 0.5, clamped to the edges)."""
    n, h, w = maps.shape

    def axis(out, inp):
        pos = np.clip((np.arange(out) + 0.5) * inp / out - 0.5, 0, inp - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, inp - 1)
        return lo, hi, pos - lo

    y0, y1, fy = axis(size[0], h)
    x0, x1, fx = axis(size[1], w)
    rows = maps[:, y0] * (1 - fy)[None, :, None] + maps[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


class _inference:
    """Runs the model in inference mode, restoring its modes afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:  # parents first, so each child ends in its own mode
            m.train(mode)


def _params(model):
    return model.parameters() if hasattr(model, "parameters") else []


def _device(model):
    params = _params(model)
    return params[0].device if params else None


def _dtype(model):
    params = _params(model)
    return params[0].dtype if params else np.float32


def _numpy(t):
    return t.numpy() if t.device == "cpu" else t.to("cpu").numpy()
