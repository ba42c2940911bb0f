"""The flagship example: the tutorial's CIFAR-10 CNN, trained with
augmentation, written as the tutorial's Keras code with ``tensorflow``
replaced by ``fastnn``.

    python examples/cifar10_cnn.py                    # the embedded shapes set
    python examples/cifar10_cnn.py --data ~/data/cifar-10-python.tar.gz
    python examples/cifar10_cnn.py --data keras       # Keras's cache, ~/.keras/datasets

It prints test accuracy, macro precision/recall/F1 and one-vs-rest ROC AUC,
saves the model (cifar10_cnn.npz), and, when matplotlib is installed, draws
the learning curves, the confusion matrix and the one-vs-rest ROC curves
(cifar10_cnn.png) and a grid of test images with their Grad-CAM heat maps
(cifar10_cnn_gradcam.png).
"""
import argparse
import os
import time

import numpy as np

import fastnn
from fastnn import distributed, explain, metrics
from fastnn.datasets import shapes
from fastnn.keras.datasets import cifar10
from fastnn.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
from fastnn.keras.models import Sequential
from fastnn.keras.preprocessing.image import ImageDataGenerator


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="the CIFAR-10 archive or folder, or 'keras' for "
                                  "cifar10.load_data()'s own search ($FASTNN_DATA, then "
                                  "~/.keras/datasets); default: the embedded shapes set")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--padding", choices=("valid", "same"), default="valid",
                   help="the convolutions' padding (the tutorial's network: valid)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--device", default="cpu", help='"cpu" or "cuda"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="cifar10_cnn", help="prefix of the saved model and PNGs")
    return p.parse_args()


def main():
    args = parse_args()
    start_all = time.perf_counter()
    # Under `mpiexec -n R` every rank trains on its share of each batch with
    # its share of the cores; rank 0 alone reports and writes files.
    distributed.init()
    report = print if distributed.rank() == 0 else (lambda *a, **k: None)
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)

    if args.data:
        (x_train, y_train), (x_test, y_test) = cifar10.load_data(
            None if args.data == "keras" else args.data)
        class_names = cifar10.CLASS_NAMES
    else:
        report("No --data given: using the embedded shapes set (10 classes of 32x32 RGB images).")
        (x_train, y_train), (x_test, y_test) = shapes.load_data()
        class_names = shapes.CLASS_NAMES
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    report(f"train {x_train.shape}, test {x_test.shape}, {fastnn.get_num_threads()} threads")

    datagen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1,
                                 height_shift_range=0.1, horizontal_flip=True)
    datagen.fit(x_train)

    pad = args.padding
    model = Sequential([
        Conv2D(32, (3, 3), activation="relu", padding=pad, input_shape=(32, 32, 3)),
        MaxPooling2D((2, 2)),
        Conv2D(64, (3, 3), activation="relu", padding=pad), MaxPooling2D((2, 2)),
        Conv2D(128, (3, 3), activation="relu", padding=pad), MaxPooling2D((2, 2)),
        Flatten(), Dense(512, activation="relu"), Dense(10, activation="softmax")])
    if args.device != "cpu":
        model.to(args.device)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary(print_fn=report)

    start = time.perf_counter()
    history = model.fit(datagen.flow(x_train, y_train, batch_size=args.batch_size,
                                     seed=args.seed),
                        epochs=args.epochs, validation_data=(x_test, y_test))
    train_time = time.perf_counter() - start
    steps = args.epochs * -(-len(x_train) // args.batch_size)

    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    probs = model.predict(x_test, batch_size=256, verbose=0)
    y_true, y_pred = y_test.reshape(-1), probs.argmax(axis=1)
    report(f"\ntraining: {train_time:.0f} s ({args.epochs} epochs, validation included), "
          f"{steps * args.batch_size / train_time:,.0f} images/s")
    report(f"test accuracy  {accuracy:.4f}   (loss {loss:.4f})")
    classes = np.arange(len(class_names))
    for name, fn in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                     ("F1", metrics.f1_score)):
        value = fn(y_true, y_pred, labels=classes, average="macro", zero_division=0)
        report(f"{name:<15}{value:.4f} (macro)")
    auc = metrics.roc_auc_score(y_true, probs, multi_class="ovr", labels=classes)
    report(f"ROC AUC        {auc:.4f} (one-vs-rest, macro)")

    model.save(args.out + ".npz")
    report(f"saved the model to {args.out}.npz")
    plt = pyplot() if distributed.rank() == 0 else None
    if plt is not None:
        plot_training(plt, history.history, y_true, y_pred, probs, class_names,
                      args.out + ".png")
        plot_grad_cam(plt, model, x_test, y_true, y_pred, class_names,
                      args.out + "_gradcam.png")
    report(f"total: {time.perf_counter() - start_all:.0f} s")


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the pictures (pip install matplotlib)")
        return None
    return plt


def plot_training(plt, history, y_true, y_pred, probs, class_names, path):
    """Loss and accuracy per epoch, the confusion matrix, and each class's
    one-vs-rest ROC curve."""
    fig, axes = plt.subplots(2, 2, figsize=(14, 11.5))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes[0], ("loss", "accuracy")):
        ax.plot(epochs, history[key], label="train")
        ax.plot(epochs, history["val_" + key], label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    ax = axes[1, 0]
    im = ax.imshow(metrics.confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names))),
                   cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test)")
    fig.colorbar(im, ax=ax)
    ax = axes[1, 1]
    for k, name in enumerate(class_names):
        fpr, tpr, _ = metrics.roc_curve(y_true == k, probs[:, k])
        auc = metrics.roc_auc_score(y_true == k, probs[:, k])
        ax.plot(fpr, tpr, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, one class against the rest (test; AUC)")
    ax.legend(fontsize="small", loc="lower right")
    save(fig, path)


def plot_grad_cam(plt, model, x_test, y_true, y_pred, class_names, path, n=16):
    """The first n test images, titled true -> predicted (red when wrong),
    with the Grad-CAM heat of the predicted class laid over them."""
    heat = explain.grad_cam(model, x_test[:n])
    cols = 8
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(2.1 * cols, 2.8 * -(-n // cols)))
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(x_test[i], interpolation="nearest")
        ax.imshow(heat[i], cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
        ok = y_true[i] == y_pred[i]
        ax.set_title(f"{class_names[y_true[i]]}\n-> {class_names[y_pred[i]]}", fontsize=9,
                     color="black" if ok else "red")
    fig.suptitle("Grad-CAM of the last convolution: where the predicted class's evidence lies")
    save(fig, path)


def save(fig, path):
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
