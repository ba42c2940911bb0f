"""Hostile arguments to every public op and layer: each gets a Python
exception (ValueError or TypeError; IndexError for an index, OSError for a
file that cannot be read) or, for empty batches and zero-length sequences,
an empty result; never a signal, a hang or a wrong-typed error.

The cases run in child interpreters (tests/conftest.py's run_python): a
runner executes them one after another, printing a line before and after
each, so a case that kills its interpreter is reported as a failure by
name, and a fresh runner goes on with the next case."""
import json
import textwrap

import pytest

from conftest import run_python

ERROR = "error"    # ValueError or TypeError
EMPTY = "empty"    # returns; `out` has no elements (an array, or a tuple/list of arrays)
OK = "ok"          # returns (a conversion the API documents, e.g. float16 -> float32)
INDEX = "index"    # IndexError (or ValueError)
FILE = "file"      # ValueError or OSError
MEMORY = "memory"  # ValueError, or MemoryError for a size that fits 64 bits but no memory

# Shared names for the cases: small valid arguments.
PRELUDE = """
import os, tempfile
import numpy as np
import fastnn
from fastnn import functional as F, kernels as K, nn, optim, models, callbacks, data, losses
x4 = np.ones((2, 5, 5, 3), np.float32)          # NHWC images
w4 = np.ones((3, 3, 3, 4), np.float32)          # HWIO kernel
dy4 = np.ones((2, 3, 3, 4), np.float32)         # conv output gradient (valid, stride 1)
seq = np.ones((2, 4, 3), np.float32)            # (batch, time, features)
wl, ul, bl = np.ones((3, 8), np.float32), np.ones((2, 8), np.float32), np.zeros(8, np.float32)
wg, ug, bg = np.ones((3, 6), np.float32), np.ones((2, 6), np.float32), np.zeros(6, np.float32)
h2 = np.zeros((2, 2), np.float32)
def small_model(n_in=4, classes=3):
    m = models.Sequential([nn.Dense(8, activation="relu"), nn.Dense(classes, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(np.ones((4, n_in), np.float32), np.zeros(4, np.int64), epochs=1, verbose=0)
    return m
def param(shape=(3,), writeable=True):
    a = np.ones(shape, np.float32)
    a.flags.writeable = writeable
    p = fastnn.tensor(a, requires_grad=True)
    p.grad = fastnn.tensor(np.ones(shape, np.float32))
    return p
def write(content):
    fd, path = tempfile.mkstemp(suffix=".fastnn")
    os.write(fd, content)
    os.close(fd)
    return path
"""

HUGE = "2**31 - 1"  # the largest window argument the entry points accept
CASES = {
    # ------------------------------------------------ gemm
    "gemm inner sizes differ": ("out = K.gemm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))", ERROR),
    "gemm 3-D operand": ("out = K.gemm(np.ones((2, 3, 1), np.float32), np.ones((3, 2), np.float32))", ERROR),
    "gemm empty rows": ("out = K.gemm(np.ones((0, 3), np.float32), np.ones((3, 2), np.float32))", EMPTY),
    "gemm object array": ("out = K.gemm(np.ones((2, 2), object), np.ones((2, 2), np.float32))", ERROR),
    "gemm float16 converted": ("out = K.gemm(np.ones((2, 2), np.float16), np.ones((2, 2), np.float32)); assert out[0, 0] == 2", OK),
    "gemm read-only c": ("c = np.zeros((2, 2), np.float32); c.flags.writeable = False\n"
                         "out = K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), c=c)", ERROR),
    "gemm c of the wrong shape": ("out = K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), c=np.zeros((3, 2), np.float32))", ERROR),
    "gemm c non-contiguous": ("out = K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), c=np.zeros((2, 4), np.float32)[:, ::2])", ERROR),
    "gemm c float64": ("out = K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), c=np.zeros((2, 2)))", ERROR),
    "gemm zero-stride views of 2**62 elements": (
        "big = lambda shape: np.lib.stride_tricks.as_strided(np.ones(1, np.float32), shape, (0, 0))\n"
        "out = K.gemm(big((2**31, 2**31)), big((2**31, 2**31)))", ERROR),
    "gemm alpha a string": ("out = K.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), alpha='2')", ERROR),
    # ------------------------------------------------ conv2d (kernels and functional)
    "conv2d stride 0": ("out = K.conv2d(x4, w4, stride=0)", ERROR),
    "conv2d stride negative": ("out = K.conv2d(x4, w4, stride=-1)", ERROR),
    "conv2d stride float": ("out = K.conv2d(x4, w4, stride=1.5)", ERROR),
    "conv2d padding negative": ("out = K.conv2d(x4, w4, padding=-1)", ERROR),
    "conv2d padding 2**40": ("out = K.conv2d(x4, w4, padding=2**40)", ERROR),
    "conv2d padding 2**31-1 (output 2**32 a side)": (f"out = K.conv2d(x4, w4, padding={HUGE})", ERROR),
    "conv2d padding (2**31-1, 0) (output 384 GiB)": (f"out = K.conv2d(x4, w4, padding=({HUGE}, 0))", MEMORY),
    "conv2d dilation 2**31-1": (f"out = K.conv2d(x4, w4, dilation={HUGE})", ERROR),
    "conv2d dilation 0": ("out = K.conv2d(x4, w4, dilation=0)", ERROR),
    "conv2d kernel larger than the input": ("out = K.conv2d(x4, np.ones((7, 7, 3, 4), np.float32))", ERROR),
    "conv2d channels differ": ("out = K.conv2d(x4, np.ones((3, 3, 2, 4), np.float32))", ERROR),
    "conv2d bias of the wrong size": ("out = K.conv2d(x4, w4, np.ones(5, np.float32))", ERROR),
    "conv2d 3-D input": ("out = K.conv2d(x4[0], w4)", ERROR),
    "conv2d empty batch": ("out = K.conv2d(x4[:0], w4)", EMPTY),
    "conv2d zero filters": ("out = K.conv2d(x4, w4[..., :0])", EMPTY),
    "conv2d object array": ("out = K.conv2d(x4.astype(object), w4)", ERROR),
    "conv2d float16 converted": ("out = K.conv2d(x4.astype(np.float16), w4); assert out.dtype == np.float32 and out[0, 0, 0, 0] == 27", OK),
    "conv2d padding 'full'": ("out = K.conv2d(x4, w4, padding='full')", ERROR),
    "conv2d_backward dy of the wrong shape": ("out = K.conv2d_backward(x4, w4, dy4[:, :2])", ERROR),
    "conv2d_backward stride 0": ("out = K.conv2d_backward(x4, w4, dy4, stride=0)", ERROR),
    "conv2d_backward empty batch": ("out = K.conv2d_backward(x4[:0], w4, dy4[:0])[0]", EMPTY),
    "F.conv2d stride 0": ("out = F.conv2d(x4, w4, stride=0)", ERROR),
    "F.conv2d padding 2**31-1": (f"out = F.conv2d(x4, w4, padding={HUGE})", ERROR),
    "F.conv2d kernel larger than the input": ("out = F.conv2d(x4, np.ones((6, 1, 3, 4), np.float32))", ERROR),
    "F.conv2d empty batch with gradients": (
        "x = fastnn.tensor(x4[:0], requires_grad=True); w = fastnn.tensor(w4, requires_grad=True)\n"
        "y = F.conv2d(x, w); y.sum().backward(); out = y.numpy()\n"
        "assert x.grad.shape == x.shape and np.all(w.grad.numpy() == 0)", EMPTY),
    # ------------------------------------------------ pooling
    "max_pool2d pool size 0": ("out = K.max_pool2d(x4, pool_size=0)", ERROR),
    "max_pool2d pool size negative": ("out = K.max_pool2d(x4, pool_size=-2)", ERROR),
    "max_pool2d strides 0": ("out = K.max_pool2d(x4, pool_size=2, strides=0)", ERROR),
    "max_pool2d pool larger than the input": ("out = K.max_pool2d(x4, pool_size=6)", ERROR),
    "max_pool2d pool 2**31-1, same padding, stride 1": (f"out = K.max_pool2d(x4, pool_size={HUGE}, strides=1, padding='same'); assert out.shape == x4.shape", OK),
    "max_pool2d explicit padding refused": ("out = K.max_pool2d(x4, padding=1)", ERROR),
    "max_pool2d empty batch": ("out = K.max_pool2d(x4[:0])", EMPTY),
    "max_pool2d object array": ("out = K.max_pool2d(x4.astype(object))", ERROR),
    "max_pool2d_backward dy of the wrong shape": ("out = K.max_pool2d_backward(x4, np.ones((2, 3, 3, 3), np.float32))", ERROR),
    "avg_pool2d pool size 0": ("out = K.avg_pool2d(x4, pool_size=(0, 2))", ERROR),
    "avg_pool2d strides negative": ("out = K.avg_pool2d(x4, strides=-1)", ERROR),
    "avg_pool2d empty batch": ("out = K.avg_pool2d(x4[:0])", EMPTY),
    "avg_pool2d_backward dy of the wrong shape": ("out = K.avg_pool2d_backward(x4, np.ones((2, 1, 1, 3), np.float32))", ERROR),
    "F.max_pool2d pool size 0": ("out = F.max_pool2d(x4, pool_size=0)", ERROR),
    "F.avg_pool2d pool larger than the input": ("out = F.avg_pool2d(x4, pool_size=9)", ERROR),
    # ------------------------------------------------ LSTM and GRU
    "lstm zero-length sequence": ("out = K.lstm(seq[:, :0], None, None, wl, ul, bl)[0]; assert out.shape == (2, 0, 2)", EMPTY),
    "lstm empty batch": ("out = K.lstm(seq[:0], None, None, wl, ul, bl)", EMPTY),
    "lstm recurrent kernel of the wrong shape": ("out = K.lstm(seq, None, None, wl, np.ones((2, 6), np.float32), bl)", ERROR),
    "lstm kernel of the wrong input size": ("out = K.lstm(seq, None, None, np.ones((4, 8), np.float32), ul, bl)", ERROR),
    "lstm bias of the wrong size": ("out = K.lstm(seq, None, None, wl, ul, np.zeros(7, np.float32))", ERROR),
    "lstm h0 of the wrong batch": ("out = K.lstm(seq, np.zeros((3, 2), np.float32), None, wl, ul, bl)", ERROR),
    "lstm 2-D input": ("out = K.lstm(seq[0], None, None, wl, ul, bl)", ERROR),
    "lstm object array": ("out = K.lstm(seq.astype(object), None, None, wl, ul, bl)", ERROR),
    "lstm_backward dout of the wrong shape": ("out = K.lstm_backward(seq, None, None, wl, ul, bl, np.ones((2, 3, 2), np.float32))", ERROR),
    "lstm_backward zero-length sequence": ("out = K.lstm_backward(seq[:, :0], None, None, wl, ul, bl, np.ones((2, 0, 2), np.float32))[0]", EMPTY),
    "gru zero-length sequence": ("out = K.gru(seq[:, :0], None, wg, ug, bg)[0]", EMPTY),
    "gru reset_after with a 1-D bias": ("out = K.gru(seq, None, wg, ug, bg, reset_after=True)", ERROR),
    "gru_backward empty batch": ("out = K.gru_backward(seq[:0], None, wg, ug, bg, np.ones((0, 4, 2), np.float32))[0]", EMPTY),
    "lstm_cell empty batch": ("out = K.lstm_cell(seq[:0, 0], h2[:0], h2[:0], wl, ul, bl)", EMPTY),
    "lstm_cell 3-D x": ("out = K.lstm_cell(seq, h2, h2, wl, ul, bl)", ERROR),
    "gru_cell h of the wrong shape": ("out = K.gru_cell(seq[:, 0], np.zeros((2, 3), np.float32), wg, ug, bg)", ERROR),
    "F.lstm zero-length sequence": ("out = F.lstm(seq[:, :0], h2, h2, wl, ul, bl)[0].numpy()", EMPTY),
    "F.gru_cell float16 converted": ("out = F.gru_cell(seq[:, 0].astype(np.float16), h2, wg, ug, bg)", OK),
    # ------------------------------------------------ other functional ops and losses
    "F.linear sizes differ": ("out = F.linear(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))", ERROR),
    "F.matmul object array": ("out = F.matmul(np.ones((2, 2), object), np.ones((2, 2), np.float32))", ERROR),
    "F.softmax axis out of range": ("out = F.softmax(np.ones((2, 3), np.float32), axis=5)", ERROR),
    "F.dropout rate 1.5": ("out = F.dropout(np.ones(4, np.float32), 1.5)", ERROR),
    "F.dropout rate NaN": ("out = F.dropout(np.ones(4, np.float32), float('nan'))", ERROR),
    "F.reshape to the wrong size": ("out = F.reshape(np.ones(6, np.float32), (4, 2))", ERROR),
    "F.cross_entropy label -1": ("out = F.cross_entropy(np.ones((2, 3), np.float32), np.array([0, -1]))", ERROR),
    "F.cross_entropy label = classes": ("out = F.cross_entropy(np.ones((2, 3), np.float32), np.array([0, 3]))", ERROR),
    "F.cross_entropy label 2**40": ("out = F.cross_entropy(np.ones((2, 3), np.float32), np.array([0, 2**40]))", ERROR),
    "F.cross_entropy float labels": ("out = F.cross_entropy(np.ones((2, 3), np.float32), np.array([0.0, 1.0]))", ERROR),
    "F.cross_entropy labels of the wrong length": ("out = F.cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1, 2]))", ERROR),
    "F.sparse_categorical_crossentropy label out of range": ("out = F.sparse_categorical_crossentropy(np.full((2, 3), 1 / 3, np.float32), np.array([0, 7]))", ERROR),
    "F.sparse_categorical_crossentropy from logits, label -3": ("out = F.sparse_categorical_crossentropy(np.ones((2, 3), np.float32), np.array([-3, 0]), from_logits=True)", ERROR),
    "F.categorical_crossentropy one-hot of the wrong shape": ("out = F.categorical_crossentropy(np.full((2, 3), 1 / 3, np.float32), np.eye(4, dtype=np.float32)[:2])", ERROR),
    "F.binary_cross_entropy shapes differ": ("out = F.binary_cross_entropy(np.full((2, 1), 0.5, np.float32), np.ones((3, 1), np.float32))", ERROR),
    "F.mse_loss shapes differ": ("out = F.mse_loss(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))", ERROR),
    "losses.sparse_categorical_crossentropy label out of range": ("out = losses.sparse_categorical_crossentropy(np.array([5]), np.full((1, 3), 1 / 3, np.float32))", ERROR),
    "tensor index out of range": ("out = fastnn.tensor(np.ones(3, np.float32))[7]", INDEX),
    "tensor of strings": ("out = fastnn.tensor(np.array(['a', 'b']))", ERROR),
    # ------------------------------------------------ layers
    "Dense units 0": ("out = nn.Dense(0)", ERROR),
    "Dense units -1": ("out = nn.Dense(-1)", ERROR),
    "Dense units a string": ("out = nn.Dense('8')", ERROR),
    "Dense input of the wrong size after build": ("d = nn.Dense(2); d(np.ones((1, 3), np.float32)); out = d(np.ones((1, 4), np.float32))", ERROR),
    "Dense empty batch": ("out = nn.Dense(2)(np.ones((0, 3), np.float32)).numpy()", EMPTY),
    "Conv2D filters 0": ("out = nn.Conv2D(0, 3)", ERROR),
    "Conv2D kernel size 0": ("out = nn.Conv2D(4, 0)", ERROR),
    "Conv2D strides 0": ("out = nn.Conv2D(4, 3, strides=0)", ERROR),
    "Conv2D strides negative": ("out = nn.Conv2D(4, 3, strides=-2)", ERROR),
    "Conv2D padding negative": ("out = nn.Conv2D(4, 3, padding=-1)(x4)", ERROR),
    "Conv2D kernel larger than the input": ("out = nn.Conv2D(4, 9)(x4)", ERROR),
    "Conv2D empty batch": ("out = nn.Conv2D(4, 3)(x4[:0]).numpy()", EMPTY),
    "Conv2D object input": ("out = nn.Conv2D(4, 3)(x4.astype(object))", ERROR),
    "MaxPooling2D pool size 0": ("out = nn.MaxPooling2D(0)", ERROR),
    "MaxPooling2D pool larger than the input": ("out = nn.MaxPooling2D(8)(x4)", ERROR),
    "AveragePooling2D strides 0": ("out = nn.AveragePooling2D(2, strides=0)", ERROR),
    "AveragePooling2D empty batch": ("out = nn.AveragePooling2D(2)(x4[:0]).numpy()", EMPTY),
    "Flatten empty batch": ("out = nn.Flatten()(x4[:0]).numpy(); assert out.shape == (0, 75)", EMPTY),
    "Dropout rate 1.5": ("out = nn.Dropout(1.5)", ERROR),
    "Dropout rate NaN": ("out = nn.Dropout(float('nan'))", ERROR),
    "Activation unknown": ("out = nn.Activation('nope')", ERROR),
    "BatchNormalization empty batch": ("bn = nn.BatchNormalization(); bn.train(); out = bn(x4[:0]).numpy()", EMPTY),
    "LSTM units 0": ("out = nn.LSTM(0)", ERROR),
    "LSTM 2-D input": ("out = nn.LSTM(2)(np.ones((2, 3), np.float32))", ERROR),
    "LSTM zero-length sequence, return_sequences": ("out = nn.LSTM(2, return_sequences=True)(seq[:, :0]).numpy(); assert out.shape == (2, 0, 2)", EMPTY),
    "LSTM zero-length sequence, final state": ("out = nn.LSTM(2)(seq[:, :0]).numpy(); assert out.shape == (2, 2) and not out.any()", OK),
    "LSTM empty batch": ("out = nn.LSTM(2)(seq[:0]).numpy()", EMPTY),
    "GRU zero-length sequence": ("out = nn.GRU(2, return_sequences=True)(seq[:, :0]).numpy()", EMPTY),
    "GRU float16 input": ("out = nn.GRU(2)(seq.astype(np.float16)).numpy()", OK),
    "Embedding index = input_dim": ("out = nn.Embedding(10, 4)(np.array([[1, 10]]))", ERROR),
    "Embedding index -1": ("out = nn.Embedding(10, 4)(np.array([-1]))", ERROR),
    "Embedding index 2**63-1": ("out = nn.Embedding(10, 4)(np.array([2**63 - 1]))", ERROR),
    "Embedding fractional indices": ("out = nn.Embedding(10, 4)(np.array([0.5]))", ERROR),
    "Embedding input_dim 0": ("out = nn.Embedding(0, 4)", ERROR),
    "Embedding empty input": ("out = nn.Embedding(10, 4)(np.zeros((0, 3), np.int64)).numpy()", EMPTY),
    # ------------------------------------------------ optimizers
    "SGD lr NaN": ("out = optim.SGD([param()], lr=float('nan'))", ERROR),
    "Adam lr NaN": ("out = optim.Adam([param()], lr=float('nan'))", ERROR),
    "Adam lr inf": ("out = optim.Adam([param()], lr=float('inf'))", ERROR),
    "RMSprop lr negative": ("out = optim.RMSprop([param()], lr=-0.1)", ERROR),
    "Adagrad lr a string": ("out = optim.Adagrad([param()], lr='0.1')", ERROR),
    "Adam beta 1.5": ("out = optim.Adam([param()], betas=(1.5, 0.9))", ERROR),
    "Adam eps negative": ("out = optim.Adam([param()], eps=-1.0)", ERROR),
    "SGD momentum NaN": ("out = optim.SGD([param()], momentum=float('nan'))", ERROR),
    "SGD no parameters": ("out = optim.SGD([])", ERROR),
    "Adam on a read-only parameter": ("o = optim.Adam([param(writeable=False)]); o.step(); out = None", ERROR),
    "SGD on a read-only parameter": ("o = optim.SGD([param(writeable=False)], lr=0.1, momentum=0.9); o.step(); out = None", ERROR),
    "SGD on a parameter whose gradient has another shape": (
        "p = param(); p.grad = fastnn.tensor(np.ones(4, np.float32)); o = optim.SGD([p], lr=0.1); o.step()", ERROR),
    "clip_grad_norm max_norm NaN": ("out = optim.clip_grad_norm([param()], float('nan'))", ERROR),
    "LearningRateScheduler giving NaN": ("m = small_model()\n"
                                         "m.fit(np.ones((4, 4), np.float32), np.zeros(4, np.int64), epochs=1, verbose=0, "
                                         "callbacks=[callbacks.LearningRateScheduler(lambda e: float('nan'))])", ERROR),
    # ------------------------------------------------ models and files
    "fit batch_size 0": ("m = small_model(); m.fit(np.ones((4, 4), np.float32), np.zeros(4, np.int64), batch_size=0, verbose=0)", ERROR),
    "fit epochs -1": ("m = small_model(); m.fit(np.ones((4, 4), np.float32), np.zeros(4, np.int64), epochs=-1, verbose=0)", ERROR),
    "fit x and y of different lengths": ("m = small_model(); m.fit(np.ones((4, 4), np.float32), np.zeros(3, np.int64), verbose=0)", ERROR),
    "fit labels out of range": ("m = small_model(); m.fit(np.ones((4, 4), np.float32), np.array([0, 1, 2, 3]), verbose=0)", ERROR),
    "fit validation_split 1.5": ("m = small_model(); m.fit(np.ones((4, 4), np.float32), np.zeros(4, np.int64), validation_split=1.5, verbose=0)", ERROR),
    "fit empty x": ("m = small_model(); m.fit(np.ones((0, 4), np.float32), np.zeros(0, np.int64), verbose=0)", ERROR),
    "fit object x of numbers converted": ("m = small_model(); m.fit(np.ones((4, 4), object), np.zeros(4, np.int64), verbose=0)", OK),
    "fit object x holding None": ("m = small_model(); x = np.ones((4, 4), object); x[1, 2] = None\n"
                                  "m.fit(x, np.zeros(4, np.int64), verbose=0)", ERROR),
    "fit x of strings": ("m = small_model(); m.fit(np.full((4, 4), 'a'), np.zeros(4, np.int64), verbose=0)", ERROR),
    "predict no samples": ("out = small_model().predict(np.ones((0, 4), np.float32))", ERROR),
    "predict wrong feature count": ("out = small_model().predict(np.ones((2, 5), np.float32))", ERROR),
    "load_model garbage bytes": ("out = models.load_model(write(os.urandom(4096)))", FILE),
    "load_model empty file": ("out = models.load_model(write(b''))", FILE),
    "load_model zip of junk": ("import zipfile, io\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w') as z: z.writestr('model.json', '{\"layers\": 7}')\n"
                               "out = models.load_model(write(b.getvalue()))", FILE),
    "load_model truncated file": ("m = small_model(); p = write(b''); m.save(p); raw = open(p, 'rb').read()\n"
                                  "out = models.load_model(write(raw[: len(raw) // 2]))", FILE),
    "load_model a folder": ("out = models.load_model(tempfile.mkdtemp())", FILE),
    "load_model a missing file": ("out = models.load_model('/nonexistent/model.fastnn')", FILE),
    "load_weights of another model": ("m = small_model(); p = write(b''); m.save_weights(p)\n"
                                      "m2 = small_model(n_in=5); m2.load_weights(p)", ERROR),
    # ------------------------------------------------ data
    "ImageDataGenerator flow batch_size 0": ("out = data.ImageDataGenerator().flow(x4, np.zeros(2), batch_size=0)", ERROR),
    "ImageDataGenerator flow 3-D x": ("g = data.ImageDataGenerator(rotation_range=10).flow(x4[0], np.zeros(5), batch_size=1); out = next(iter(g))", ERROR),
    "ImageDataGenerator rotation NaN": ("g = data.ImageDataGenerator(rotation_range=float('nan')).flow(x4, np.zeros(2)); out = next(iter(g))", ERROR),
}

ALLOWED = {
    ERROR: ("ValueError", "TypeError"),
    INDEX: ("IndexError", "ValueError"),
    MEMORY: ("ValueError", "MemoryError"),
    FILE: ("ValueError", "OSError", "FileNotFoundError", "IsADirectoryError", "PermissionError"),
}

RUNNER = PRELUDE + textwrap.dedent("""
import json, sys, traceback
cases = json.loads(sys.argv[1])
def size(v):
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return sum(size(e) or 0 for e in v)
    return int(np.size(v.numpy() if isinstance(v, fastnn.Tensor) else v))
for name, code in cases:
    print(json.dumps({"start": name}), flush=True)
    scope = dict(globals())
    try:
        exec(code, scope)
        result = {"returned": True, "size": size(scope.get("out"))}
    except Exception as e:
        result = {"raised": type(e).__name__, "message": str(e)[:300],
                  "where": traceback.format_exc().splitlines()[-3][:200]}
    print(json.dumps(dict(result, name=name)), flush=True)
""")


def _run_all():
    """{case name: outcome dict}; a case that killed its runner gets
    {"crashed": exit status, "stderr": ...} and a new runner takes the rest."""
    todo = [(name, code) for name, (code, _) in CASES.items()]
    results = {}
    while todo:
        proc = run_python(RUNNER, json.dumps(todo), timeout=300, check=False,
                          OMP_NUM_THREADS="2")
        done = set()
        started = None
        for line in proc.stdout.splitlines():
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if "start" in msg:
                started = msg["start"]
            else:
                results[msg["name"]] = msg
                done.add(msg["name"])
        if proc.returncode != 0 or len(done) < len(todo):
            if started is None or started in done:
                raise AssertionError(f"the runner failed outside any case: {proc.stderr[-2000:]}")
            results[started] = {"crashed": proc.returncode, "stderr": proc.stderr[-2000:]}
            done.add(started)
        todo = [(n, c) for n, c in todo if n not in done]
    return results


@pytest.fixture(scope="module")
def outcomes():
    return _run_all()


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_argument(outcomes, name):
    expect = CASES[name][1]
    got = outcomes[name]
    assert "crashed" not in got, f"{name}: the interpreter died ({got['crashed']}):\n{got['stderr']}"
    if expect in ALLOWED:
        assert got.get("raised") in ALLOWED[expect], (
            f"{name}: want {' or '.join(ALLOWED[expect])}, got {got}")
        assert got["message"], f"{name}: the {got['raised']} has no message"
    else:
        assert got.get("returned"), f"{name}: want a result, got {got}"
        if expect == EMPTY:
            assert got["size"] == 0, f"{name}: want an empty result, got {got['size']} elements"
