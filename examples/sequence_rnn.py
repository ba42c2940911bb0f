"""LSTM and GRU sequence classifiers on an embedded task: telling apart four
kinds of noisy periodic signals (sine, square, sawtooth, triangle waves of
random frequency, phase and amplitude), written as the Keras code it comes
from.

    python examples/sequence_rnn.py [--epochs 8] [--threads 2]

Prints test accuracy, macro precision/recall/F1 and one-vs-rest ROC AUC for
each model, saves them (sequence_lstm.npz, sequence_gru.npz) and draws the
validation curves (sequence_rnn.png, when matplotlib is installed).
"""
import argparse
import os
import time

import numpy as np

import fastnn
from fastnn import metrics, nn
from fastnn.models import Sequential
from fastnn.optim import Adam

CLASS_NAMES = ("sine", "square", "sawtooth", "triangle")


def make_waves(n, length=60, seed=0):
    """(x (n, length, 1) float32, y (n,) int64): one wave a row, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASS_NAMES), n)
    t = np.arange(length)[None, :]
    freq = rng.uniform(1 / 30, 1 / 8, (n, 1))
    phase = rng.uniform(0, 1, (n, 1))
    cycle = (t * freq + phase) % 1.0          # position in the period, [0, 1)
    waves = np.stack([np.sin(2 * np.pi * cycle),
                      np.where(cycle < 0.5, 1.0, -1.0),
                      2 * cycle - 1,
                      4 * np.abs(cycle - 0.5) - 1])
    x = waves[y, np.arange(n)] * rng.uniform(0.5, 1.5, (n, 1))
    x += rng.normal(0, 0.3, x.shape)
    return x[..., None].astype(np.float32), y.astype(np.int64)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="sequence", help="prefix of the saved models and PNG")
    return p.parse_args()


def main():
    args = parse_args()
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    x_train, y_train = make_waves(8000, seed=args.seed)
    x_test, y_test = make_waves(2000, seed=args.seed + 1)
    print(f"train {x_train.shape}, test {x_test.shape}, {fastnn.get_num_threads()} threads")

    histories = {}
    for name, layer in (("lstm", nn.LSTM(32)), ("gru", nn.GRU(32))):
        model = Sequential([layer, nn.Dense(len(CLASS_NAMES), activation="softmax")])
        model.build((None,) + x_train.shape[1:])
        model.compile(optimizer=Adam(model.parameters(), lr=3e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.summary()
        start = time.perf_counter()
        history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                            validation_data=(x_test, y_test))
        seconds = time.perf_counter() - start
        histories[name] = history.history
        probs = model.predict(x_test, batch_size=256)
        pred = probs.argmax(axis=1)
        print(f"\n{name.upper()}: {seconds:.1f} s of training")
        print(f"test accuracy  {metrics.accuracy_score(y_test, pred):.4f}")
        print(f"precision      {metrics.precision_score(y_test, pred, average='macro'):.4f} (macro)")
        print(f"recall         {metrics.recall_score(y_test, pred, average='macro'):.4f} (macro)")
        print(f"F1             {metrics.f1_score(y_test, pred, average='macro'):.4f} (macro)")
        print(f"ROC AUC        {metrics.roc_auc_score(y_test, probs, multi_class='ovr'):.4f} "
              f"(one-vs-rest, macro)")
        print(metrics.classification_report(y_test, pred, target_names=list(CLASS_NAMES)))
        path = f"{args.out}_{name}.npz"
        model.save(path)
        print(f"saved the model to {path}\n")
    plot(histories, args.out + "_rnn.png")


def plot(histories, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the picture (pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in histories.items():
        epochs = np.arange(1, len(h["loss"]) + 1)
        axes[0].plot(epochs, h["val_loss"], label=f"{name} test")
        axes[0].plot(epochs, h["loss"], "--", label=f"{name} train")
        axes[1].plot(epochs, h["val_accuracy"], label=f"{name} test")
    for ax, title in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
