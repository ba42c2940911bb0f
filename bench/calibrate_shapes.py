#!/usr/bin/env python3
"""How hard is fastnn.datasets.shapes? Trains the flagship CNN in PyTorch (a
stand-in: fast to write, and PyTorch is only a benchmark peer) with and
without augmentation and prints test accuracy per epoch.

    python bench/calibrate_shapes.py [--epochs 10] [--aug both|on|off] [--n-train 50000]

Flagship: Conv 32/64/128 3x3 "same" ReLU, each followed by 2x2 max pooling,
Flatten, Dense 512 ReLU, Dense 10; Adam 1e-3, batch 64, Glorot-uniform
kernels as in Keras. Augmentation: fastnn.data.ImageDataGenerator with
rotation 15, shifts 0.1 and horizontal flips (the flagship example's).
"""
import argparse
import sys
import time

import numpy as np

import fastnn
from fastnn.data import ImageDataGenerator, DataLoader
from fastnn.datasets import shapes


def model(torch):
    nn = torch.nn
    layers = []
    c = 3
    for f in (32, 64, 128):
        layers += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = f
    layers += [nn.Flatten(), nn.Linear(128 * 16, 512), nn.ReLU(), nn.Linear(512, 10)]
    m = nn.Sequential(*layers)
    for p in m.modules():
        if isinstance(p, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(p.weight)
            nn.init.zeros_(p.bias)
    return m


def evaluate(torch, m, x, y):
    m.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + 500].transpose(0, 3, 1, 2)))
            correct += int((m(xb).argmax(1).numpy() == y[i:i + 500]).sum())
    m.train()
    return correct / len(x)


def train(torch, x, y, x_test, y_test, epochs, augment, seed):
    torch.manual_seed(seed)
    m = model(torch)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    if augment:
        gen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1,
                                 height_shift_range=0.1, horizontal_flip=True)
        batches = gen.flow(x, y, batch_size=64, seed=seed)
    else:
        batches = DataLoader(x, y, batch_size=64, seed=seed)
    history = []
    for epoch in range(epochs):
        t0 = time.time()
        loss_sum = correct = seen = 0
        it = iter(batches)
        for _ in range(len(batches)):
            xb, yb = next(it)
            xb = torch.from_numpy(np.ascontiguousarray(
                (np.asarray(xb, np.float32) / 255.0).transpose(0, 3, 1, 2)))
            yb = torch.from_numpy(np.asarray(yb).ravel())
            out = m(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
        acc = evaluate(torch, m, x_test, y_test)
        history.append(acc)
        print(f"  {'aug' if augment else 'plain'} epoch {epoch + 1}: loss {loss_sum / seen:.4f} "
              f"train acc {correct / seen:.4f} test acc {acc:.4f} ({time.time() - t0:.0f} s)",
              flush=True)
    return history


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--aug", choices=["both", "on", "off"], default="both")
    p.add_argument("--n-train", type=int, default=50000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("calibrate_shapes.py needs PyTorch (pip install torch)")
    torch.set_num_threads(args.threads)
    fastnn.set_num_threads(args.threads)
    t0 = time.time()
    (x, y), (x_test, y_test) = shapes.load_data()
    x, y = x[:args.n_train], y[:args.n_train].ravel()
    x_test = (x_test[:args.n_test].astype(np.float32) / 255.0)
    y_test = y_test[:args.n_test].ravel()
    print(f"shapes.load_data: {time.time() - t0:.1f} s; training on {len(x)}, testing on "
          f"{len(x_test)}", flush=True)
    results = {}
    for augment in {"both": (False, True), "on": (True,), "off": (False,)}[args.aug]:
        results[augment] = train(torch, x, y, x_test, y_test, args.epochs, augment, args.seed)
    for augment, h in results.items():
        print(f"{'augmented' if augment else 'plain'}: best test accuracy {max(h):.4f} at epoch "
              f"{int(np.argmax(h)) + 1}; per epoch {' '.join(f'{a:.3f}' for a in h)}")


if __name__ == "__main__":
    main()
