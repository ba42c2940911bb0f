"""The flagship example: a CIFAR-10 CNN trained with augmentation, written as
the Keras code it comes from.

    python examples/cifar10_cnn.py                    # the embedded shapes set
    python examples/cifar10_cnn.py --data ~/data/cifar-10-python.tar.gz

It prints test accuracy, macro precision/recall/F1 and one-vs-rest ROC AUC,
saves the model (cifar10_cnn.npz) and draws the loss/accuracy curves and the
confusion matrix (cifar10_cnn.png, when matplotlib is installed).
"""
import argparse
import os
import time

import numpy as np

import fastnn
from fastnn import metrics, nn
from fastnn.data import ImageDataGenerator
from fastnn.datasets import cifar10, shapes
from fastnn.models import Sequential
from fastnn.optim import Adam


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="the CIFAR-10 archive or folder (default: $FASTNN_DATA "
                                  "if it holds one, else the embedded shapes set)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="cpu", help='"cpu" or "cuda"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="cifar10_cnn", help="prefix of the saved model and PNG")
    return p.parse_args()


def main():
    args = parse_args()
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)

    if args.data:
        (x_train, y_train), (x_test, y_test) = cifar10.load_data(args.data)
        class_names = cifar10.CLASS_NAMES
    else:
        print("No --data given: using the embedded shapes set (10 classes of 32x32 RGB images).")
        (x_train, y_train), (x_test, y_test) = shapes.load_data()
        class_names = shapes.CLASS_NAMES
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    print(f"train {x_train.shape}, test {x_test.shape}, {fastnn.get_num_threads()} threads")

    datagen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1,
                                 height_shift_range=0.1, horizontal_flip=True)
    datagen.fit(x_train)

    model = Sequential([
        nn.Conv2D(32, (3, 3), activation="relu", padding="same", input_shape=(32, 32, 3)),
        nn.MaxPooling2D((2, 2)),
        nn.Conv2D(64, (3, 3), activation="relu", padding="same"),
        nn.MaxPooling2D((2, 2)),
        nn.Conv2D(128, (3, 3), activation="relu", padding="same"),
        nn.MaxPooling2D((2, 2)),
        nn.Flatten(),
        nn.Dense(512, activation="relu"),
        nn.Dense(10, activation="softmax"),
    ])
    if args.device != "cpu":
        model.to(args.device)
    model.build((None, 32, 32, 3))
    model.compile(optimizer=Adam(model.parameters(), lr=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    start = time.perf_counter()
    history = model.fit(datagen.flow(x_train, y_train, batch_size=args.batch_size, seed=args.seed),
                        epochs=args.epochs, validation_data=(x_test, y_test))
    train_time = time.perf_counter() - start
    steps = args.epochs * -(-len(x_train) // args.batch_size)

    result = model.evaluate(x_test, y_test, batch_size=256)
    probs = model.predict(x_test, batch_size=256)
    y_true, y_pred = y_test.reshape(-1), probs.argmax(axis=1)
    print(f"\ntraining: {train_time:.0f} s, {steps * args.batch_size / train_time:,.0f} images/s")
    print(f"test accuracy  {result['accuracy']:.4f}   (loss {result['loss']:.4f})")
    print(f"precision      {metrics.precision_score(y_true, y_pred, average='macro'):.4f} (macro)")
    print(f"recall         {metrics.recall_score(y_true, y_pred, average='macro'):.4f} (macro)")
    print(f"F1             {metrics.f1_score(y_true, y_pred, average='macro'):.4f} (macro)")
    print(f"ROC AUC        {metrics.roc_auc_score(y_true, probs, multi_class='ovr'):.4f} "
          f"(one-vs-rest, macro)")

    model.save(args.out + ".npz")
    print(f"saved the model to {args.out}.npz")
    plot(history.history, metrics.confusion_matrix(y_true, y_pred), class_names, args.out + ".png")


def plot(history, confusion, class_names, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the picture (pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes[:2], ("loss", "accuracy")):
        ax.plot(epochs, history[key], label="train")
        ax.plot(epochs, history["val_" + key], label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    im = axes[2].imshow(confusion, cmap="Blues")
    axes[2].set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    axes[2].set_yticks(range(len(class_names)), class_names)
    axes[2].set_xlabel("predicted")
    axes[2].set_ylabel("true")
    axes[2].set_title("confusion matrix (test)")
    fig.colorbar(im, ax=axes[2])
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
