"""The flagship CIFAR-10 network, the seed's Keras code (Conv 32/64/128 3x3 +
ReLU + max-pool, Flatten, Dense 512 ReLU, Dense 10 softmax; Adam 1e-3;
sparse categorical cross-entropy) built from the same weights in fastnn and
in PyTorch, for bench/run.py's whole-step and training benchmarks. With
Keras's default padding "valid" (the seed's network) the maps are 30, 15,
13, 6, 4, 2 and Flatten gives 512 features; padding "same" gives 32, 16, 8
and 2048.

PyTorch runs it as its users write it: logits and F.cross_entropy (softmax
fused into the loss), NCHW or channels_last. Its Flatten sees (C, H, W)
where Keras's sees (H, W, C), so the first dense kernel's rows are permuted
to give both the same function.
"""
import numpy as np

CONVS = [(3, 32), (32, 64), (64, 128)]
PADDINGS = ("valid", "same")


def final_map(padding):
    """The side of the last pooled map: 2 under "valid", 4 under "same"."""
    size = 32
    for _ in CONVS:
        size = (size if padding == "same" else size - 2) // 2
    return size


def dense_shapes(padding):
    return [(final_map(padding) ** 2 * CONVS[-1][1], 512), (512, 10)]


def init_weights(seed=0, padding="valid"):
    """[(kernel, bias)] in Keras layouts: He-scaled normal kernels, zero biases."""
    rng = np.random.default_rng(seed)
    out = []
    for c, f in CONVS:
        w = rng.standard_normal((3, 3, c, f)) * np.sqrt(2.0 / (9 * c))
        out.append((w.astype(np.float32), np.zeros(f, np.float32)))
    for n_in, n_out in dense_shapes(padding):
        w = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
        out.append((w.astype(np.float32), np.zeros(n_out, np.float32)))
    return out


def data(n, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return x, y


def fastnn_model(weights, padding="valid"):
    """A compiled fastnn.models.Sequential holding `weights` (Adam 1e-3)."""
    import fastnn
    from fastnn import nn
    from fastnn.models import Sequential
    from fastnn.optim import Adam
    model = Sequential([
        nn.Conv2D(32, 3, padding=padding, activation="relu"), nn.MaxPooling2D(),
        nn.Conv2D(64, 3, padding=padding, activation="relu"), nn.MaxPooling2D(),
        nn.Conv2D(128, 3, padding=padding, activation="relu"), nn.MaxPooling2D(),
        nn.Flatten(), nn.Dense(512, activation="relu"), nn.Dense(10, activation="softmax")])
    model.build((None, 32, 32, 3))
    layers = [m for m in model if "kernel" in m._parameters]
    with fastnn.no_grad():
        for layer, (w, b) in zip(layers, weights):
            layer.kernel.copy_(fastnn.tensor(w))
            layer.bias.copy_(fastnn.tensor(b))
    model.compile(optimizer=Adam(model.parameters(), lr=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fastnn_step(model, x, y):
    """step() -> loss: one forward, loss, backward and Adam update on (x, y)."""
    import fastnn
    import fastnn.functional as F
    xt, yt = fastnn.tensor(x), fastnn.tensor(y)
    opt = model.optimizer

    def step():
        out = model(xt)
        loss = F.sparse_categorical_crossentropy(out, yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def torch_model(torch, weights, channels_last, padding="valid"):
    nn = torch.nn
    p = 1 if padding == "same" else 0
    s, flat = final_map(padding), dense_shapes(padding)[0][0]
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=p), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=p), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=p), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, 10))
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    denses = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for m, (w, b) in zip(convs, weights[:3]):
            m.weight.copy_(torch.from_numpy(w).permute(3, 2, 0, 1))
            m.bias.copy_(torch.from_numpy(b))
        (w1, b1), (w2, b2) = weights[3:]
        # Keras flattens (h, w, c), PyTorch (c, h, w)
        w1 = w1.reshape(s, s, 128, 512).transpose(2, 0, 1, 3).reshape(flat, 512)
        denses[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(w1.T)))
        denses[0].bias.copy_(torch.from_numpy(b1))
        denses[1].weight.copy_(torch.from_numpy(np.ascontiguousarray(w2.T)))
        denses[1].bias.copy_(torch.from_numpy(b2))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def torch_images(torch, x, channels_last):
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    return t.contiguous(memory_format=torch.channels_last if channels_last
                        else torch.contiguous_format)


def torch_step(torch, model, x, y, channels_last):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch_images(torch, x, channels_last), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
        return loss
    return step
