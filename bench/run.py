#!/usr/bin/env python3
"""fastnn against NumPy, side by side, one table per run.

    python bench/run.py gemm [--threads 1 2] [--sizes 256 1024 64x2048x512]
                             [--repeat 5] [--min-time 0.2] [--json out.json]
    python bench/run.py overhead [--batches 32 256]   # one MLP training step vs PyTorch
    python bench/run.py conv [--padding same]         # the seed's CNN's layers and step
    python bench/run.py conv --sweep                  # common conv layer shapes vs PyTorch
    python bench/run.py optim                         # one Adam step over the flagship CNN
    python bench/run.py train [--keras-python PY]     # training it: fastnn, PyTorch, Keras
    python bench/run.py augment [--batch 64]           # ImageDataGenerator.flow, images/s
    python bench/run.py rnn [--shapes 64x50x128x256] [--cells lstm gru]  # vs PyTorch
    python bench/run.py distributed [--ranks 2]      # 1 process x 2 threads vs 2 MPI ranks

Every fastnn result is checked against a float64 NumPy reference before it is
timed, and a wrong result stops the run with an error. The machines here are
noisy, so both libraries are timed in turns in one process, on the same
inputs and the same thread count, and the ratio comes from that one run.

For NumPy's best OpenBLAS kernel, unset OpenBLAS's overrides for the run only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py gemm

Adding a benchmark: write `add_NAME_arguments(parser)` and
`run_NAME(args, session) -> rows`, and list them in SUBCOMMANDS at the end.
"""
import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import fastnn
except ImportError as e:
    sys.exit(f"run.py: cannot import fastnn ({e}); install it with `pip install .` "
             "or put the source tree's python/ folder on PYTHONPATH")
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    sys.exit("run.py: needs threadpoolctl to give NumPy's BLAS the same thread count as "
             "fastnn: pip install threadpoolctl (or pip install \".[bench]\")")

# OpenBLAS reads these when it loads; forcing an older core type or a
# smaller L2 makes a current NumPy slower than it really is.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class BenchError(Exception):
    """A benchmark cannot give a meaningful figure: fastnn computed a wrong result."""


# ------------------------------------------------------------------ timing

def time_calls(fn, n):
    """Wall-clock seconds for n calls of fn."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def calls_for(fn, min_time):
    """How many calls of fn take at least min_time seconds, so that each sample
    is long enough for the timer and the scheduler not to matter."""
    n = 1
    while True:
        t = time_calls(fn, n)
        if t >= min_time:
            return n
        # aim a little past the target from the rate just seen; grow at most
        # 100x a step, since a very short first sample is mostly noise
        n = max(n + 1, min(100 * n, math.ceil(1.2 * n * min_time / max(t, 1e-9))))


def time_interleaved(fns, min_time, repeat):
    """Seconds per call of each fn in `fns` (name -> callable), `repeat`
    samples each of at least min_time. The libraries take turns, in an order
    reversed every round, so that a slow spell of the machine hits all of them."""
    counts = {}
    for name, fn in fns.items():
        t = time_calls(fn, 1)  # warm-up: caches, pages, thread pools
        # a call that is clearly long enough needs no sizing (saves seconds at 4096^2)
        counts[name] = 1 if t >= 2 * min_time else calls_for(fn, min_time)
    samples = {name: [] for name in fns}
    order = list(fns)
    for _ in range(repeat):
        for name in order:
            samples[name].append(time_calls(fns[name], counts[name]) / counts[name])
        order.reverse()
    return samples


def summarize(samples):
    """Best and median seconds per call: the best is the figure least disturbed
    by other work on the machine, the median says how much it swung."""
    return {"best_s": min(samples), "median_s": statistics.median(samples),
            "samples_s": samples}


# ------------------------------------------------------------------ the session

class Session:
    """What every subcommand shares: thread control for both libraries, the
    measured peak, and a table printed row by row as results arrive."""

    def __init__(self, args):
        self.args = args
        self.peaks = {}
        self.columns = None

    @contextlib.contextmanager
    def threads(self, n):
        """fastnn and NumPy's BLAS both on n threads."""
        before = fastnn.get_num_threads()
        fastnn.set_num_threads(n)
        torch = sys.modules.get("torch")
        torch_before = torch.get_num_threads() if torch else None
        if torch:
            torch.set_num_threads(n)
        try:
            with threadpool_limits(limits=n, user_api="blas"):
                yield
        finally:
            fastnn.set_num_threads(before)
            if torch:
                torch.set_num_threads(torch_before)

    def peak(self, threads):
        """The FMA peak in GFLOP/s of fastnn's active instruction set."""
        if threads not in self.peaks:
            # the best of a few probes: a busy spell of the machine only lowers it
            self.peaks[threads] = max(fastnn._C.peak_gflops(threads, 0.2) for _ in range(3))
        return self.peaks[threads]

    def table(self, columns):
        """Starts a table; columns are (header, key, format spec) triples. The
        first column is aligned left, the others right, each as wide as its header."""
        self.columns = columns
        print()
        print(self._line([header for header, _, _ in columns]))
        sys.stdout.flush()

    def row(self, row):
        cells = []
        for _, key, spec in self.columns:
            value = row.get(key)
            cells.append("-" if value is None else format(value, spec))
        print(self._line(cells))
        sys.stdout.flush()

    def _line(self, cells):
        widths = [max(len(h), 16 if i == 0 else 0) for i, (h, _, _) in enumerate(self.columns)]
        first = f"{cells[0]:<{widths[0]}}"
        return "  ".join([first] + [f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:])])


def describe_environment(session):
    """Prints what runs: fastnn's build and kernel, NumPy's BLAS and its kernel,
    and warns about settings that make the comparison unfair."""
    info = fastnn.build_info()
    print(f"fastnn {info['version']} from {os.path.dirname(fastnn.__file__)}")
    print(f"  {info['compiler']}, OpenMP {'yes' if info['openmp'] else 'no'}, "
          f"ISA {info['isa']} (best on this CPU: {info['isa_best']})")
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    print(f"NumPy {np.__version__}")
    for lib in blas:
        print(f"  BLAS {lib.get('internal_api')} {lib.get('version')}, "
              f"kernel {lib.get('architecture', '?')}, "
              f"threading {lib.get('threading_layer', '?')}, {lib.get('filepath')}")
    if not blas:
        print("  WARNING: threadpoolctl finds no BLAS behind NumPy: its thread count "
              "cannot be set, so the NumPy column may use every core")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}")
    preload = os.environ.get("LD_PRELOAD", "")
    print(f"allocator: {'LD_PRELOAD=' + preload if preload else 'the C library malloc'} "
          "(compare both: tcmalloc is PyTorch's best case here)")
    if info.get("malloc_keeps_freed_memory") and not preload:
        print("  fastnn made glibc malloc keep freed memory (FASTNN_KEEP_FREED_MEMORY=0 "
              "turns it off); PyTorch, in this process, gains from it too")
    for name in OPENBLAS_OVERRIDES:
        if name in os.environ:
            print(f"WARNING: {name}={os.environ[name]} is set and slows NumPy's OpenBLAS; "
                  "for a fair figure run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                  "python bench/run.py ...", file=sys.stderr)
    too_many = [t for t in session.args.threads if t > (os.cpu_count() or 1)]
    if too_many:
        print(f"WARNING: threads {too_many} exceed the {os.cpu_count()} CPUs", file=sys.stderr)
    return {"fastnn": info, "numpy": np.__version__, "blas": blas,
            "machine": platform.machine(), "cpus": os.cpu_count(), "cpu": _cpu_model(),
            "env": {k: os.environ[k] for k in OPENBLAS_OVERRIDES + ("LD_PRELOAD",)
                    if k in os.environ}}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ------------------------------------------------------------------ gemm

# Square sizes, then the shapes the CNN and RNN layers send: (M, K, N) of a
# dense layer's (batch, in, out) and a convolution's (pixels, kh*kw*cin, cout).
GEMM_SQUARE = (256, 512, 1024, 2048, 4096)
GEMM_LAYER_SHAPES = ((64, 2048, 512), (64, 512, 10), (4096, 27, 32), (16384, 288, 64))


def parse_shape(text):
    """'256' -> (256, 256, 256); 'MxKxN' or 'M,K,N' -> (M, K, N)."""
    parts = text.replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) == 1:
        dims *= 3
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected a size N or a shape MxKxN, got {text!r}")
    return dims


def add_gemm_arguments(p):
    p.add_argument("--sizes", nargs="+", type=parse_shape, metavar="N|MxKxN",
                   default=[(n, n, n) for n in GEMM_SQUARE] + list(GEMM_LAYER_SHAPES),
                   help="square sizes N or shapes MxKxN (default: squares 256..4096 and "
                        "the CNN/RNN layer shapes)")


def check_gemm(a, b, c, ref, threads):
    """Raises BenchError unless c (float32) matches ref = a @ b (float64).
    A float32 sum of K products drifts like sqrt(K)*eps times the size of its
    terms, which |a_i| * |b_j| bounds (Cauchy-Schwarz); a lost block or a
    wrong tile is off by far more than the slack allowed here."""
    k = a.shape[1]
    eps = np.finfo(np.float32).eps
    scale = np.outer(np.linalg.norm(a.astype(np.float64), axis=1),
                     np.linalg.norm(b.astype(np.float64), axis=0))
    tol = 8 * eps * math.sqrt(k) * scale + np.finfo(np.float32).tiny
    err = np.abs(c - ref)
    bad = ~(err <= tol)  # NaN counts as bad
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise BenchError(
            f"fastnn.kernels.gemm is wrong for (M,K,N)={(a.shape[0], k, b.shape[1])} on "
            f"{threads} thread(s): {int(bad.sum())} entries off, e.g. C[{i},{j}] = "
            f"{float(c[i, j])!r}, float64 reference {float(ref[i, j])!r} "
            f"(allowed error {tol[i, j]:.3g})")


def run_gemm(args, session):
    peaks = {t: session.peak(t) for t in args.threads}
    print(f"measured FMA peak ({fastnn._C.get_isa()}): " + ", ".join(
        f"{t} thread{'s' if t > 1 else ''} {g:.1f} GFLOP/s" for t, g in peaks.items()))
    print(f"timing: best of {args.repeat} interleaved samples of >= {args.min_time} s each, "
          "C = A @ B in float32 into a reused output")
    session.table([("shape (M,K,N)", "shape_str", ""), ("threads", "threads", "d"),
                   ("fastnn GFLOP/s", "fastnn_gflops", ".1f"),
                   ("NumPy GFLOP/s", "numpy_gflops", ".1f"),
                   ("fastnn/NumPy", "ratio", ".2f"), ("% peak", "peak_percent", ".1f")])
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in args.sizes:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        # one output each, reused for every call: fresh pages cost ~2 us each here
        c_fastnn = np.zeros((m, n), np.float32)
        c_numpy = np.zeros((m, n), np.float32)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        flop = 2.0 * m * n * k
        for t in args.threads:
            with session.threads(t):
                c_fastnn.fill(np.nan)  # beta = 0 must never read C
                fastnn.kernels.gemm(a, b, c=c_fastnn)
                check_gemm(a, b, c_fastnn, ref, t)
                times = time_interleaved(
                    {"fastnn": lambda: fastnn.kernels.gemm(a, b, c=c_fastnn),
                     "numpy": lambda: np.dot(a, b, out=c_numpy)},
                    args.min_time, args.repeat)
            fn, npy = summarize(times["fastnn"]), summarize(times["numpy"])
            row = {"bench": "gemm", "shape": [m, k, n], "shape_str": f"({m},{k},{n})",
                   "threads": t, "fastnn_gflops": flop / fn["best_s"] / 1e9,
                   "numpy_gflops": flop / npy["best_s"] / 1e9,
                   "fastnn_median_gflops": flop / fn["median_s"] / 1e9,
                   "numpy_median_gflops": flop / npy["median_s"] / 1e9,
                   "fastnn_times": fn, "numpy_times": npy, "peak_gflops": peaks[t]}
            row["ratio"] = row["fastnn_gflops"] / row["numpy_gflops"]
            row["peak_percent"] = 100.0 * row["fastnn_gflops"] / peaks[t]
            session.row(row)
            rows.append(row)
        del ref
    return rows


# ------------------------------------------------------------------ overhead

def import_torch():
    """PyTorch, the peer of the training benchmarks, or None when it is missing
    (pip install torch==2.13.0 takes the CPU build from local disk here)."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: fastnn's column only "
              "(pip install torch==2.13.0 for the comparison)")
        return None
    print(f"PyTorch {torch.__version__}")
    return torch


def add_overhead_arguments(p):
    p.add_argument("--batches", nargs="+", type=int, default=[32, 256], metavar="B",
                   help="batch sizes (default: 32 256)")
    p.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")


def mlp_steps(batch, hidden, torch):
    """One SGD training step of a 784-hidden-10 ReLU MLP with cross-entropy,
    in fastnn (and PyTorch), from the same weights and data. Returns
    {name: step()} where step() returns the loss tensor."""
    import fastnn.functional as F
    rng = np.random.default_rng(0)
    sizes = [(784, hidden), (hidden, 10)]
    init = [(rng.uniform(-1, 1, s).astype(np.float32) * np.sqrt(6 / sum(s)),
             np.zeros(s[1], np.float32)) for s in sizes]
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    lr = 0.05

    params = [fastnn.tensor(a.copy(), requires_grad=True) for pair in init for a in pair]
    w1, b1, w2, b2 = params
    xt = fastnn.tensor(x)

    def fastnn_step():
        for p in params:
            p.grad = None
        loss = F.cross_entropy(F.linear(F.relu(F.linear(xt, w1, b1)), w2, b2), y)
        loss.backward()
        with fastnn.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)
        return loss

    steps = {"fastnn": fastnn_step}
    if torch is not None:
        model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(),
                                    torch.nn.Linear(hidden, 10))
        with torch.no_grad():
            for layer, (w, b) in zip((model[0], model[2]), init):
                layer.weight.copy_(torch.from_numpy(w.T.copy()))  # PyTorch keeps (out, in)
                layer.bias.copy_(torch.from_numpy(b))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        xp, yp = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xp), yp)
            loss.backward()
            opt.step()
            return loss
        steps["torch"] = torch_step
    return steps


def check_steps(steps, n=5):
    """Raises BenchError unless the libraries' losses agree over n steps from
    the same start: a wrong gradient shows as a diverging loss."""
    losses = {name: [float(step().item()) for _ in range(n)] for name, step in steps.items()}
    if "torch" in losses:
        a, b = np.array(losses["fastnn"]), np.array(losses["torch"])
        if not np.allclose(a, b, rtol=1e-3, atol=1e-4):
            raise BenchError(f"fastnn's losses {a} differ from PyTorch's {b} over {n} steps "
                             "from the same weights")


def run_overhead(args, session):
    torch = import_torch()
    print("timing: best of {} interleaved samples of >= {} s each; one step = forward, "
          "cross-entropy, backward, SGD update".format(args.repeat, args.min_time))
    session.table([("model", "model", ""), ("batch", "batch", "d"), ("threads", "threads", "d"),
                   ("fastnn us", "fastnn_us", ".1f"), ("PyTorch us", "torch_us", ".1f"),
                   ("PyTorch/fastnn", "speedup", ".2f")])
    rows = []
    for batch in args.batches:
        for t in args.threads:
            with session.threads(t):
                steps = mlp_steps(batch, args.hidden, torch)
                check_steps(steps)
                times = time_interleaved(steps, args.min_time, args.repeat)
            row = {"bench": "overhead", "model": f"MLP 784-{args.hidden}-10", "batch": batch,
                   "threads": t}
            for name, samples in times.items():
                summary = summarize(samples)
                row[f"{name}_us"] = summary["best_s"] * 1e6
                row[f"{name}_times"] = summary
            if "torch_us" in row:
                row["speedup"] = row["torch_us"] / row["fastnn_us"]
            session.row(row)
            rows.append(row)
    return rows


# ------------------------------------------------------------------ conv

def add_conv_arguments(p):
    p.add_argument("--batch", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--padding", choices=("valid", "same"), default="valid",
                   help="the flagship network's padding: 'valid' (Keras's default: the seed's "
                        "network, maps 30/15/13/6/4/2) or 'same' (maps 32/16/8)")
    p.add_argument("--sweep", action="store_true",
                   help="time a table of common layer shapes instead of the flagship network")


def flagship_plan(padding):
    """The flagship network's layers: (name, kind, output channels or units)."""
    import flagship
    plan, size, c = [], 32, 3
    for i, (_, f) in enumerate(flagship.CONVS, 1):
        out = size if padding == "same" else size - 2
        plan += [(f"conv{i} {c}->{f} {size}x{size}", "conv", f),
                 (f"pool{i} {out}->{out // 2}", "pool", None)]
        size, c = out // 2, f
    (n_in, n_out), (_, n_cls) = flagship.dense_shapes(padding)
    return plan + [(f"dense {n_in}->{n_out}", "dense", n_out), (f"dense {n_out}->{n_cls}",
                                                                "dense", n_cls)]


def flagship_layers(batch, torch, padding):
    """Per layer: {"name", "fastnn": (fwd(), fwd_bwd()), "torch": {format: (fwd, fwd_bwd)}},
    from the same weights and inputs. The first layer's input needs no
    gradient (it is the images), as in training."""
    import fastnn.functional as F
    rng = np.random.default_rng(0)
    shape = (batch, 32, 32, 3)
    layers = []
    for name, kind, width in flagship_plan(padding):
        x = rng.standard_normal(shape).astype(np.float32)
        first = not layers
        xt = fastnn.tensor(x, requires_grad=not first)
        if kind == "conv":
            c = shape[3]
            w = (rng.standard_normal((3, 3, c, width)) * np.sqrt(2 / (9 * c))).astype(np.float32)
            b = np.zeros(width, np.float32)
            wt, bt = fastnn.tensor(w, requires_grad=True), fastnn.tensor(b, requires_grad=True)
            f = lambda xt=xt, wt=wt, bt=bt: F.conv2d(xt, wt, bt, padding=padding,
                                                     activation="relu")
            side = shape[1] if padding == "same" else shape[1] - 2
            out_shape = (batch, side, side, width)
        elif kind == "pool":
            f = lambda xt=xt: F.max_pool2d(xt, 2)
            out_shape = (shape[0], shape[1] // 2, shape[2] // 2, shape[3])
        else:
            x = x.reshape(batch, -1)
            xt = fastnn.tensor(x, requires_grad=True)
            w = (rng.standard_normal((x.shape[1], width))
                 * np.sqrt(2 / x.shape[1])).astype(np.float32)
            wt = fastnn.tensor(w, requires_grad=True)
            bt = fastnn.tensor(np.zeros(width, np.float32), requires_grad=True)
            act = F.relu if width != 10 else (lambda t: t)
            f = lambda xt=xt, wt=wt, bt=bt, act=act: act(F.linear(xt, wt, bt))
            out_shape = (batch, width)
        g = rng.standard_normal(out_shape).astype(np.float32)

        def fwd_bwd(f=f, g=g, params=(xt,) + ((wt, bt) if kind != "pool" else ())):
            for p in params:
                p.grad = None
            f().backward(g)
        layer = {"name": name, "fastnn": (f, fwd_bwd), "torch": {},
                 "check": (kind, x, w if kind != "pool" else None)}
        if kind == "conv":
            layer["algorithm"] = conv_plan(x, w, 1, padding)
        if torch is not None:
            for fmt in ("nchw", "channels_last"):
                layer["torch"][fmt] = torch_layer(torch, kind, x, w if kind != "pool" else None,
                                                  g, first, fmt, padding)
        layers.append(layer)
        shape = out_shape
    return layers


def conv_plan(x, w, stride, padding):
    """What fastnn's auto choice runs for (forward, backward-data,
    backward-weight), as "d" (direct), "w2" or "w4" (Winograd F(2x2,3x3) /
    F(4x4,3x3)): one letter when all three agree."""
    short = {"direct": "d", "winograd2": "w2", "winograd4": "w4"}
    mode = padding if isinstance(padding, str) else "explicit"
    ph = 0 if isinstance(padding, str) else padding
    plan = [short[p] for p in fastnn._C.conv2d_plan(x, w, stride, stride, mode, ph, ph, 1, 1)]
    return plan[0] if len(set(plan)) == 1 else "/".join(plan)


def torch_layer(torch, kind, x, w, g, first, fmt, padding):
    """(fwd, fwd_bwd) of one flagship layer in PyTorch, in memory format fmt."""
    tf = torch.nn.functional
    if kind == "dense":
        xt = torch.from_numpy(x).requires_grad_(True)
        wt = torch.from_numpy(w.T.copy()).requires_grad_(True)
        bt = torch.zeros(w.shape[1], requires_grad=True)
        gt = torch.from_numpy(g)
        f = (lambda: tf.relu(tf.linear(xt, wt, bt))) if w.shape[1] != 10 else (
            lambda: tf.linear(xt, wt, bt))
    else:
        mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=mf)
        xt.requires_grad_(not first)
        gt = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(memory_format=mf)
        if kind == "conv":
            wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(memory_format=mf)
            wt.requires_grad_(True)
            bt = torch.zeros(w.shape[3], requires_grad=True)
            p = 1 if padding == "same" else 0
            f = lambda: tf.relu(tf.conv2d(xt, wt, bt, padding=p))
        else:
            f = lambda: tf.max_pool2d(xt, 2)

    def fwd_bwd():
        f().backward(gt)
    return f, fwd_bwd


def check_layer(layer, padding):
    """Raises BenchError unless the layer's fastnn forward matches a plain
    reference: the C++ loop version of the convolution (bias 0, ReLU), NumPy
    for pooling and dense layers."""
    kind, x, w = layer["check"]
    got = layer["fastnn"][0]().numpy()
    if kind == "conv":
        want = fastnn._C.conv2d_reference(x, w, None, 1, 1, padding, 0, 0, 1, 1, True)
    elif kind == "pool":
        n, h, wd, c = x.shape
        want = x[:, :h // 2 * 2, :wd // 2 * 2].reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
    else:
        want = x.astype(np.float64) @ w
        if w.shape[1] != 10:
            want = np.maximum(want, 0)
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got - want).max()) / scale
    if not err <= 1e-4:
        raise BenchError(f"{layer['name']}: fastnn's output differs from the reference by "
                         f"{err:.2e} (relative to its largest value)")


def run_conv(args, session):
    if args.sweep:
        return run_conv_sweep(args, session)
    torch = import_torch()
    print(f"timing: best of {args.repeat} interleaved samples of >= {args.min_time} s each; "
          f"batch {args.batch}; padding {args.padding!r}; PyTorch takes the faster of NCHW and "
          f"channels_last; algo: fastnn's choice for the convolutions' forward, backward-data "
          f"and backward-weight (d direct, w2 / w4 Winograd F(2x2,3x3) / F(4x4,3x3))")
    session.table([("layer", "layer", ""), ("threads", "threads", "d"), ("algo", "algo", ""),
                   ("fwd ms", "fastnn_fwd_ms", ".2f"), ("torch fwd", "torch_fwd_ms", ".2f"),
                   ("ratio", "fwd_ratio", ".2f"), ("fwd+bwd ms", "fastnn_fb_ms", ".2f"),
                   ("torch f+b", "torch_fb_ms", ".2f"), ("ratio", "fb_ratio", ".2f")])
    rows = []
    for t in args.threads:
        with session.threads(t):
            layers = flagship_layers(args.batch, torch, args.padding)
            totals = {"fastnn_fwd_ms": 0.0, "torch_fwd_ms": 0.0, "fastnn_fb_ms": 0.0,
                      "torch_fb_ms": 0.0}
            for layer in layers:
                check_layer(layer, args.padding)
                fns = {"fastnn_fwd": layer["fastnn"][0], "fastnn_fb": layer["fastnn"][1]}
                for fmt, (f, fb) in layer["torch"].items():
                    fns[f"{fmt}_fwd"], fns[f"{fmt}_fb"] = f, fb
                times = {k: summarize(v)["best_s"] * 1e3
                         for k, v in time_interleaved(fns, args.min_time, args.repeat).items()}
                row = {"bench": "conv", "layer": layer["name"], "threads": t,
                       "algo": layer.get("algorithm"),
                       "fastnn_fwd_ms": times["fastnn_fwd"], "fastnn_fb_ms": times["fastnn_fb"]}
                if layer["torch"]:
                    row["torch_fwd_ms"] = min(times[f"{m}_fwd"] for m in layer["torch"])
                    row["torch_fb_ms"] = min(times[f"{m}_fb"] for m in layer["torch"])
                    row["fwd_ratio"] = row["torch_fwd_ms"] / row["fastnn_fwd_ms"]
                    row["fb_ratio"] = row["torch_fb_ms"] / row["fastnn_fb_ms"]
                for k in totals:
                    totals[k] += row.get(k) or 0.0
                session.row(row)
                rows.append(row)
            total = dict(totals, bench="conv", layer="sum of layers", threads=t)
            if torch is not None:
                total["fwd_ratio"] = total["torch_fwd_ms"] / total["fastnn_fwd_ms"]
                total["fb_ratio"] = total["torch_fb_ms"] / total["fastnn_fb_ms"]
            session.row(total)
            rows.append(total)
            row = training_step_row(args, torch, t)
            session.row(row)
            rows.append(row)
    return rows


# Common layer shapes: (name, H (= W), C, F, kernel, stride, padding)
CONV_SWEEP = [
    ("ResNet 16ch 32x32", 32, 16, 16, 3, 1, "same"),
    ("ResNet 32ch 16x16", 16, 32, 32, 3, 1, "same"),
    ("ResNet 64ch 8x8", 8, 64, 64, 3, 1, "same"),
    ("ResNet down 16->32 s2", 32, 16, 32, 3, 2, "same"),
    ("ResNet down 32->64 s2", 16, 32, 64, 3, 2, "same"),
    ("1x1 proj 16->32 s2", 32, 16, 32, 1, 2, "valid"),
    ("1x1 64->128 8x8", 8, 64, 128, 1, 1, "valid"),
    ("1x1 128->64 16x16", 16, 128, 64, 1, 1, "valid"),
    ("VGG 3->64 32x32", 32, 3, 64, 3, 1, "same"),
    ("VGG 64->64 32x32", 32, 64, 64, 3, 1, "same"),
    ("VGG 128->128 16x16", 16, 128, 128, 3, 1, "same"),
    ("VGG 256->256 8x8", 8, 256, 256, 3, 1, "same"),
    ("LeNet 5x5 1->6 28x28", 28, 1, 6, 5, 1, "valid"),
    ("LeNet 5x5 6->16 14x14", 14, 6, 16, 5, 1, "valid"),
    ("MNIST 3x3 1->32 28x28", 28, 1, 32, 3, 1, "valid"),
    ("5x5 32->32 16x16", 16, 32, 32, 5, 1, "same"),
    ("odd 15x15 32->64 valid", 15, 32, 64, 3, 1, "valid"),
    ("odd 7x7 64->64", 7, 64, 64, 3, 1, "same"),
    ("odd 6x6 64->128 valid", 6, 64, 128, 3, 1, "valid"),
]


def sweep_layer(torch, batch, size, c, f, k, stride, padding, seed=0):
    """(fastnn fwd, fastnn fwd+bwd, torch fwd, torch fwd+bwd, x, w) of one
    convolution with bias, PyTorch in channels_last."""
    from fastnn import kernels as K
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, size, size, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) * np.sqrt(2 / (k * k * c))).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    y = K.conv2d(x, w, b, stride=stride, padding=padding)
    g = rng.standard_normal(y.shape).astype(np.float32)
    fns = [lambda: K.conv2d(x, w, b, stride=stride, padding=padding),
           lambda: (K.conv2d(x, w, b, stride=stride, padding=padding),
                    K.conv2d_backward(x, w, g, stride=stride, padding=padding))]
    if torch is None:
        return fns, x, w, y, None
    tf, cl = torch.nn.functional, torch.channels_last
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=cl).requires_grad_(True)
    wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(memory_format=cl).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    gt = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(memory_format=cl)
    if padding == "same":  # Keras's rule: the extra cell after
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads = (total // 2, total - total // 2) * 2

        def conv():
            return tf.conv2d(tf.pad(xt, pads), wt, bt, stride=stride)
    else:
        def conv():
            return tf.conv2d(xt, wt, bt, stride=stride)

    def torch_fwd():
        with torch.no_grad():
            return conv()

    def torch_fb():
        conv().backward(gt)
        xt.grad = wt.grad = bt.grad = None
    want = torch_fwd().permute(0, 2, 3, 1).numpy()
    return fns + [torch_fwd, torch_fb], x, w, y, want


def run_conv_sweep(args, session):
    """Common layer shapes, forward and forward+backward (dx, dw, db), fastnn
    (its automatic algorithm) against PyTorch channels_last."""
    torch = import_torch()
    print(f"timing: best of {args.repeat} interleaved samples of >= {args.min_time} s each; "
          f"batch {args.batch}; PyTorch channels_last; fwd+bwd = forward, dx, dw and db. "
          f"GFLOP/s counts a direct convolution's work (2 N OH OW KH KW C F a pass), so "
          f"Winograd, which does less, can pass 100% of peak; algo as in `conv`")
    session.table([("layer", "layer", ""), ("threads", "threads", "d"), ("algo", "algo", ""),
                   ("fwd ms", "fastnn_fwd_ms", ".3f"), ("torch fwd", "torch_fwd_ms", ".3f"),
                   ("ratio", "fwd_ratio", ".2f"), ("GFLOP/s", "fwd_gflops", ".0f"),
                   ("% peak", "fwd_peak_pct", ".0f"), ("fwd+bwd ms", "fastnn_fb_ms", ".3f"),
                   ("torch f+b", "torch_fb_ms", ".3f"), ("ratio", "fb_ratio", ".2f"),
                   ("GFLOP/s", "fb_gflops", ".0f"), ("% peak", "fb_peak_pct", ".0f")])
    rows = []
    for t in args.threads:
        with session.threads(t):
            peak = session.peak(t)
            for name, size, c, f, k, stride, padding in CONV_SWEEP:
                fns, x, w, y, want = sweep_layer(torch, args.batch, size, c, f, k, stride,
                                                 padding)
                if want is not None:
                    err = float(np.abs(y - want).max()) / (float(np.abs(want).max()) or 1.0)
                    if not err <= 1e-3:
                        raise BenchError(f"{name}: fastnn's output differs from PyTorch's by "
                                         f"{err:.2e} (relative to its largest value)")
                names = ["fastnn_fwd", "fastnn_fb", "torch_fwd", "torch_fb"][:len(fns)]
                times = {k_: summarize(v)["best_s"] * 1e3 for k_, v in time_interleaved(
                    dict(zip(names, fns)), args.min_time, args.repeat).items()}
                flop = 2.0 * y.shape[0] * y.shape[1] * y.shape[2] * k * k * c * f
                row = {"bench": "conv_sweep", "layer": name, "threads": t,
                       "algo": conv_plan(x, w, stride, padding),
                       "fastnn_fwd_ms": times["fastnn_fwd"], "fastnn_fb_ms": times["fastnn_fb"],
                       "fwd_gflops": flop / times["fastnn_fwd"] / 1e6,
                       "fb_gflops": 3 * flop / times["fastnn_fb"] / 1e6}
                row["fwd_peak_pct"] = 100 * row["fwd_gflops"] / peak
                row["fb_peak_pct"] = 100 * row["fb_gflops"] / peak
                if "torch_fwd" in times:
                    row.update(torch_fwd_ms=times["torch_fwd"], torch_fb_ms=times["torch_fb"],
                               fwd_ratio=times["torch_fwd"] / times["fastnn_fwd"],
                               fb_ratio=times["torch_fb"] / times["fastnn_fb"])
                session.row(row)
                rows.append(row)
    print(f"peak (FMA, measured): " + ", ".join(f"{session.peak(t):.0f} GFLOP/s on {t} "
                                                  f"thread{'s' if t > 1 else ''}"
                                                  for t in args.threads))
    return rows


def training_step_row(args, torch, threads):
    """One whole training step of the flagship network (forward, loss,
    backward, Adam) in fastnn and PyTorch (its faster memory format), from
    the same weights and batch, after checking that their losses agree."""
    import flagship
    weights = flagship.init_weights(padding=args.padding)
    x, y = flagship.data(args.batch)
    steps = {"fastnn": flagship.fastnn_step(flagship.fastnn_model(weights, args.padding), x, y)}
    if torch is not None:
        for fmt in ("nchw", "channels_last"):
            cl = fmt == "channels_last"
            steps[fmt] = flagship.torch_step(
                torch, flagship.torch_model(torch, weights, cl, args.padding), x, y, cl)
    losses = {name: [float(step().item()) for _ in range(3)] for name, step in steps.items()}
    for name, values in losses.items():
        if not np.allclose(values, losses["fastnn"], rtol=2e-3, atol=1e-4):
            raise BenchError(f"training step: fastnn's losses {losses['fastnn']} differ from "
                             f"PyTorch ({name}) {values} from the same weights")
    times = {k: summarize(v)["best_s"] * 1e3
             for k, v in time_interleaved(steps, args.min_time, args.repeat).items()}
    row = {"bench": "conv", "layer": "training step", "threads": threads,
           "fastnn_fb_ms": times["fastnn"]}
    if torch is not None:
        row["torch_fb_ms"] = min(times["nchw"], times["channels_last"])
        row["fb_ratio"] = row["torch_fb_ms"] / row["fastnn_fb_ms"]
    return row


# ------------------------------------------------------------------ train

def add_train_arguments(p):
    p.add_argument("--batch", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--steps", type=int, default=100, help="timed steps (default: 100)")
    p.add_argument("--padding", choices=("valid", "same"), default="valid",
                   help="the flagship network's padding (default 'valid': the seed's network)")
    p.add_argument("--keras-python", metavar="PYTHON",
                   help="a Python with tensorflow (Keras 3) installed, to time the original "
                        "Keras code on the same arrays in a subprocess")


KERAS_SCRIPT = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
threads = int(sys.argv[2])
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
import numpy as np
import keras
from keras import layers
d = np.load(sys.argv[1])
x, y, batch, padding = d["x"], d["y"], int(d["batch"]), str(d["padding"])
model = keras.Sequential([
    keras.Input((32, 32, 3)),
    layers.Conv2D(32, (3, 3), activation="relu", padding=padding), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu", padding=padding), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(128, (3, 3), activation="relu", padding=padding), layers.MaxPooling2D((2, 2)),
    layers.Flatten(), layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(x[:10 * batch], y[:10 * batch], batch_size=batch, epochs=1, verbose=0)
best = float("inf")
for _ in range(int(d["repeat"])):
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)
    best = min(best, (time.perf_counter() - t0) / (len(x) // batch))
print("KERAS_STEP_S", best)
"""


def keras_step_seconds(python, x, y, batch, threads, repeat, padding):
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=x, y=y, batch=batch, repeat=repeat, padding=padding)
        script = os.path.join(tmp, "keras_train.py")
        with open(script, "w") as f:
            f.write(KERAS_SCRIPT)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))  # LD_PRELOAD passes on too
        done = subprocess.run([python, script, data, str(threads)], capture_output=True,
                              text=True, env=env, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith("KERAS_STEP_S"):
            return float(line.split()[1])
    print(f"Keras run failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    return None


def run_train(args, session):
    """Training of the flagship network on the same arrays: fastnn's
    model.fit against a PyTorch loop (channels_last, Adam) and, with
    --keras-python, the original Keras code."""
    import flagship
    torch = import_torch()
    n = args.steps * args.batch
    x, y = flagship.data(n)
    print(f"timing: best of {args.repeat} runs of {args.steps} steps of batch {args.batch} "
          f"(after a warm-up); fastnn and Keras run model.fit, PyTorch (channels_last) a "
          f"loop over shuffled batches")
    session.table([("library", "library", ""), ("threads", "threads", "d"),
                   ("ms/step", "ms", ".2f"), ("images/s", "images_s", ",.0f"),
                   ("fastnn speedup", "speedup", ".2f")])
    rows = []
    for t in args.threads:
        with session.threads(t):
            weights = flagship.init_weights(padding=args.padding)
            model = flagship.fastnn_model(weights, args.padding)
            model.fit(x[:5 * args.batch], y[:5 * args.batch], batch_size=args.batch, verbose=0)

            def fastnn_run():
                model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=True)
            runs = {"fastnn": fastnn_run}
            if torch is not None:
                tm = flagship.torch_model(torch, weights, True, args.padding)
                opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
                xt = flagship.torch_images(torch, x, channels_last=True)
                yt = torch.from_numpy(y)
                gen = torch.Generator().manual_seed(0)

                def torch_run(steps=args.steps):
                    order = torch.randperm(n, generator=gen)
                    for i in range(steps):
                        idx = order[i * args.batch:(i + 1) * args.batch]
                        opt.zero_grad()
                        loss = torch.nn.functional.cross_entropy(tm(xt[idx]), yt[idx])
                        loss.backward()
                        opt.step()
                torch_run(5)
                runs["PyTorch"] = torch_run
            best = {k: float("inf") for k in runs}
            for r in range(args.repeat):
                for name in (list(runs) if r % 2 == 0 else list(reversed(runs))):
                    t0 = time.perf_counter()
                    runs[name]()
                    best[name] = min(best[name], (time.perf_counter() - t0) / args.steps)
            if args.keras_python:
                k = keras_step_seconds(args.keras_python, x, y, args.batch, t, args.repeat,
                                       args.padding)
                if k is not None:
                    best["Keras"] = k
            peers = [v for name, v in best.items() if name != "fastnn"]
            for name, s in best.items():
                row = {"bench": "train", "library": name, "threads": t, "ms": s * 1e3,
                       "images_s": args.batch / s}
                if name == "fastnn" and peers:
                    row["speedup"] = min(peers) / s
                session.row(row)
                rows.append(row)
    return rows


# ------------------------------------------------------------------ optim

# The flagship CNN's parameters (HWIO kernels, biases, dense kernels): 1.15 million
FLAGSHIP_PARAMS = [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 128), (128,),
                   (2048, 512), (512,), (512, 10), (10,)]


def add_optim_arguments(p):
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")


def adam_steppers(torch, lr, seed=0):
    """{name: step()} for one Adam step over the flagship parameters, every
    library from the same weights and gradients: fastnn.optim.Adam and
    torch.optim.Adam with its defaults (on CPU tensors PyTorch picks its
    single-tensor loop), and PyTorch's foreach variant for reference.
    Also returns {name: the parameters as NumPy views}, and the starting
    weights and the gradients."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(np.float32) * np.float32(0.05)
               for s in FLAGSHIP_PARAMS]
    grads = [rng.standard_normal(s).astype(np.float32) * np.float32(0.01)
             for s in FLAGSHIP_PARAMS]
    params = [fastnn.tensor(w.copy(), requires_grad=True) for w in weights]
    for p, g in zip(params, grads):
        p.grad = fastnn.tensor(g)
    steppers = {"fastnn": fastnn.optim.Adam(params, lr=lr).step}
    views = {"fastnn": [p.numpy() for p in params]}
    if torch is not None:
        for name, foreach in (("torch", None), ("torch_foreach", True)):
            tp = [torch.tensor(w.copy(), requires_grad=True) for w in weights]
            for p, g in zip(tp, grads):
                p.grad = torch.from_numpy(g.copy())
            steppers[name] = torch.optim.Adam(tp, lr=lr, foreach=foreach).step
            views[name] = [p.detach().numpy() for p in tp]
    return steppers, views, weights, grads


def check_adam(torch, lr, steps=3):
    """Raises BenchError unless every library's parameters after a few Adam
    steps match a float64 NumPy Adam's from the same start."""
    steppers, views, weights, grads = adam_steppers(torch, lr)
    ref = [w.astype(np.float64) for w in weights]
    m = [np.zeros_like(r) for r in ref]
    v = [np.zeros_like(r) for r in ref]
    for t in range(1, steps + 1):
        for step in steppers.values():
            step()
        for i, g in enumerate(grads):
            g = g.astype(np.float64)
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            denom = np.sqrt(v[i]) / np.sqrt(1 - 0.999 ** t) + 1e-8
            ref[i] = ref[i] - lr / (1 - 0.9 ** t) * m[i] / denom
    for name, ps in views.items():
        err = max(float(np.abs(p - r).max()) for p, r in zip(ps, ref))
        if not err <= 1e-6:
            raise BenchError(f"{name}'s parameters after {steps} Adam steps differ from a float64 "
                             f"NumPy Adam's by {err:.2e}")


def run_optim(args, session):
    torch = import_torch()
    n = sum(math.prod(s) for s in FLAGSHIP_PARAMS)
    print(f"timing: best of {args.repeat} interleaved samples of >= {args.min_time} s each; one "
          f"Adam step over the flagship CNN's {len(FLAGSHIP_PARAMS)} parameter tensors "
          f"({n:,} values); PyTorch: torch.optim.Adam with its defaults, and foreach=True")
    session.table([("optimizer", "optimizer", ""), ("threads", "threads", "d"),
                   ("fastnn us", "fastnn_us", ".1f"), ("GB/s", "fastnn_gbs", ".1f"),
                   ("PyTorch us", "torch_us", ".1f"), ("foreach us", "torch_foreach_us", ".1f"),
                   ("PyTorch/fastnn", "speedup", ".2f")])
    rows = []
    for t in args.threads:
        with session.threads(t):
            check_adam(torch, args.lr)
            steppers = adam_steppers(torch, args.lr)[0]
            times = time_interleaved(steppers, args.min_time, args.repeat)
        row = {"bench": "optim", "optimizer": "Adam", "threads": t, "values": n}
        for name, samples in times.items():
            summary = summarize(samples)
            row[f"{name}_us"] = summary["best_s"] * 1e6
            row[f"{name}_times"] = summary
        # p, g, m, v read and p, m, v written: 28 bytes a value
        row["fastnn_gbs"] = 28 * n / row["fastnn_us"] / 1e3
        if "torch_us" in row:
            row["speedup"] = row["torch_us"] / row["fastnn_us"]
        session.row(row)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ augment

def add_augment_arguments(p):
    p.add_argument("--batch", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--images", type=int, default=50000,
                   help="images in the data set the batches are drawn from (default: 50000)")


def augment_reference():
    """tests/reference/augment.py, the float64 NumPy reference of the warp."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests"))
    try:
        from reference import augment
    except ImportError as e:
        raise BenchError(f"the augment benchmark checks against tests/reference/augment.py, "
                         f"which cannot be imported ({e})") from None
    finally:
        sys.path.pop(0)
    return augment


def check_augment_batch(it, x, threads):
    """Raises BenchError unless batch 0 of flow iterator `it` is, image by
    image, the NumPy reference's transform of its source image."""
    ref = augment_reference()
    index, params = it._batch_params(0)
    got = it[0]  # no targets: the batch of images alone
    for k, j in enumerate(index):
        want = ref.transform(x[j], {key: v[k] for key, v in params.items()},
                             it.image_data_generator.fill_mode)
        err = float(np.abs(got[k] - want).max())
        if not err <= 1e-3:  # float32 rounding of 0..255 values is ~1e-5
            raise BenchError(f"ImageDataGenerator.flow on {threads} thread(s): image {k} of the "
                             f"batch differs from the NumPy reference by {err:.3g}")


def torch_flow(torch, x, batch, seed):
    """PyTorch doing the same per batch: gather, convert to float, draw the
    rotation (15 degrees), shifts (0.1) and flips, affine_grid + grid_sample
    (bilinear, border padding: Keras's "nearest")."""
    tf = torch.nn.functional
    data = torch.from_numpy(x)
    gen = torch.Generator().manual_seed(seed)
    state = {"order": torch.randperm(len(x), generator=gen), "i": 0}

    def next_batch():
        i = state["i"]
        if (i + 1) * batch > len(x):
            state["order"], i = torch.randperm(len(x), generator=gen), 0
        state["i"] = i + 1
        idx = state["order"][i * batch:(i + 1) * batch]
        xb = data[idx].permute(0, 3, 1, 2).float()
        n = xb.shape[0]
        theta = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15)
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.2  # 0.1 of the size, in [-1, 1] units
        flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
        m = torch.zeros(n, 2, 3)
        m[:, 0, 0] = torch.cos(theta) * flip
        m[:, 0, 1] = -torch.sin(theta)
        m[:, 1, 0] = torch.sin(theta) * flip
        m[:, 1, 1] = torch.cos(theta)
        m[:, :, 2] = shift
        grid = tf.affine_grid(m, list(xb.shape), align_corners=False)
        return tf.grid_sample(xb, grid, mode="bilinear", padding_mode="border",
                              align_corners=False)
    return next_batch


def run_augment(args, session):
    from fastnn.data import ImageDataGenerator
    torch = import_torch()
    print(f"timing: best of {args.repeat} interleaved samples of >= {args.min_time} s each; "
          f"batches of {args.batch} uint8 32x32x3 images drawn from {args.images}, rotation 15, "
          f"shifts 0.1, horizontal flips, float32 out; PyTorch: affine_grid + grid_sample")
    session.table([("bench", "name", ""), ("threads", "threads", "d"),
                   ("fastnn img/s", "fastnn_images_per_s", ".0f"),
                   ("torch img/s", "torch_images_per_s", ".0f"), ("fastnn/torch", "ratio", ".2f")])
    x = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    gen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1,
                             horizontal_flip=True)
    rows = []
    for t in args.threads:
        with session.threads(t):
            it = gen.flow(x, batch_size=args.batch, seed=0)
            check_augment_batch(it, x, t)
            fns = {"fastnn": lambda: next(it)}
            if torch is not None:
                fns["torch"] = torch_flow(torch, x, args.batch, 0)
            times = {k: summarize(v) for k, v in
                     time_interleaved(fns, args.min_time, args.repeat).items()}
        row = {"bench": "augment", "name": f"flow batch {args.batch}", "threads": t,
               "fastnn_images_per_s": args.batch / times["fastnn"]["best_s"],
               "fastnn_times": times["fastnn"]}
        if torch is not None:
            row["torch_images_per_s"] = args.batch / times["torch"]["best_s"]
            row["torch_times"] = times["torch"]
            row["ratio"] = row["fastnn_images_per_s"] / row["torch_images_per_s"]
        session.row(row)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ rnn

# (batch, time, input features, hidden units)
RNN_SHAPES = ((64, 50, 128, 256), (32, 200, 64, 128), (1, 100, 256, 512))
RNN_CELLS = ("lstm", "gru", "gru_reset_after")


def parse_rnn_shape(text):
    """'BxTxIxH' or 'B,T,I,H' -> (B, T, I, H)."""
    try:
        dims = tuple(int(p) for p in text.replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape BxTxIxH, got {text!r}")
    return dims


def add_rnn_arguments(p):
    p.add_argument("--shapes", nargs="+", type=parse_rnn_shape, metavar="BxTxIxH",
                   default=list(RNN_SHAPES),
                   help="(batch, time, input, hidden) (default: 64x50x128x256 32x200x64x128 "
                        "1x100x256x512)")
    p.add_argument("--cells", nargs="+", choices=RNN_CELLS, default=list(RNN_CELLS),
                   help="lstm, gru (the textbook form, fastnn's default) and gru_reset_after "
                        "(PyTorch's form); PyTorch runs nn.LSTM or nn.GRU (default: all)")


def rnn_layers(cell, shape, torch):
    """The layer in fastnn (and PyTorch) with the same weights, its input
    (which requires a gradient: dx is part of the backward) and an output
    gradient: {"fastnn": (fwd, fwd_bwd), "torch": (fwd, fwd_bwd), "check"}.
    fwd runs without recording a graph, as inference does."""
    from fastnn import nn
    B, T, I, H = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    g = rng.standard_normal((B, T, H)).astype(np.float32)
    fastnn.manual_seed(0)
    layer = nn.LSTM(H, return_sequences=True) if cell == "lstm" else nn.GRU(
        H, return_sequences=True, reset_after=cell == "gru_reset_after")
    layer(x[:1, :1])  # builds the weights
    xt = fastnn.tensor(x, requires_grad=True)
    gt = fastnn.tensor(g)

    def fwd():
        with fastnn.no_grad():
            return layer(xt)

    def fwd_bwd():
        xt.grad = None
        layer.zero_grad()
        layer(xt).backward(gt)
    out = {"fastnn": (fwd, fwd_bwd), "torch": None, "check": (layer, x)}
    if torch is None:
        return out
    # PyTorch keeps W_ih (G*H, I), W_hh (G*H, H) and two biases; its GRU is the
    # reset_after form with gates [r, z, n] and weights the old state by z.
    G = 4 if cell == "lstm" else 3
    tm = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H, batch_first=True)
    with torch.no_grad():
        k, r = layer.kernel.numpy(), layer.recurrent_kernel.numpy()
        if cell == "lstm":
            b_ih, b_hh = layer.bias.numpy(), np.zeros(G * H, np.float32)
        else:
            order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]  # [z, r, h~] -> [r, z, n]
            k, r = k[:, order], r[:, order]
            b = layer.bias.numpy().reshape(-1, G * H)
            b_ih, b_hh = b[0][order], (b[1][order] if len(b) == 2 else np.zeros(G * H, np.float32))
        tm.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(k.T)))
        tm.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(r.T)))
        tm.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(b_ih)))
        tm.bias_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(b_hh)))
    xp = torch.from_numpy(x).requires_grad_(True)
    gp = torch.from_numpy(g)

    def torch_fwd():
        with torch.no_grad():
            return tm(xp)[0]

    def torch_fwd_bwd():
        xp.grad = None
        tm.zero_grad(set_to_none=True)
        tm(xp)[0].backward(gp)
    out["torch"] = (torch_fwd, torch_fwd_bwd)
    return out


def check_rnn(cell, layers):
    """Raises BenchError unless fastnn's outputs match the plain-loop C++
    reference (fastnn._C.rnn_forward_reference) for the same weights."""
    layer, x = layers["check"]
    got = layers["fastnn"][0]().numpy()
    b = layer.bias.numpy()
    want = fastnn._C.rnn_forward_reference(cell, x, None, None, layer.kernel.numpy(),
                                           layer.recurrent_kernel.numpy(), b, False)[0]
    err = float(np.abs(got - want).max())
    if not err <= 1e-4:
        raise BenchError(f"{cell} {x.shape}: fastnn's output differs from the reference by "
                         f"{err:.2e}")


def run_rnn(args, session):
    torch = import_torch()
    print(f"timing: best of {args.repeat} interleaved samples of >= {args.min_time} s each; "
          "layers with return_sequences=True; forward without a graph (inference), "
          "forward+backward from an input that needs its gradient")
    session.table([("layer", "layer", ""), ("shape (B,T,I,H)", "shape_str", ""),
                   ("threads", "threads", "d"),
                   ("fwd ms", "fastnn_fwd_ms", ".2f"), ("torch fwd", "torch_fwd_ms", ".2f"),
                   ("ratio", "fwd_ratio", ".2f"), ("f+b ms", "fastnn_fb_ms", ".2f"),
                   ("torch f+b", "torch_fb_ms", ".2f"), ("ratio", "fb_ratio", ".2f"),
                   ("f+b GFLOP/s", "fb_gflops", ".1f"), ("% peak", "peak_percent", ".1f")])
    rows = []
    for cell in args.cells:
        gates = 4 if cell == "lstm" else 3
        for shape in args.shapes:
            B, T, I, H = shape
            flop = 2.0 * B * T * (I + H) * gates * H  # forward; backward twice that
            for t in args.threads:
                with session.threads(t):
                    layers = rnn_layers(cell, shape, torch)
                    check_rnn(cell, layers)
                    fns = {"fastnn_fwd": layers["fastnn"][0], "fastnn_fb": layers["fastnn"][1]}
                    if layers["torch"]:
                        fns["torch_fwd"], fns["torch_fb"] = layers["torch"]
                    times = {k: summarize(v)["best_s"] * 1e3
                             for k, v in time_interleaved(fns, args.min_time, args.repeat).items()}
                row = {"bench": "rnn", "layer": {"lstm": "LSTM", "gru": "GRU",
                                                 "gru_reset_after": "GRU reset_after"}[cell],
                       "shape": list(shape), "shape_str": f"({B},{T},{I},{H})", "threads": t,
                       "fastnn_fwd_ms": times["fastnn_fwd"], "fastnn_fb_ms": times["fastnn_fb"],
                       "fb_gflops": 3 * flop / times["fastnn_fb"] / 1e6}
                row["peak_percent"] = 100.0 * row["fb_gflops"] / session.peak(t)
                if "torch_fwd" in times:
                    row["torch_fwd_ms"], row["torch_fb_ms"] = times["torch_fwd"], times["torch_fb"]
                    row["fwd_ratio"] = row["torch_fwd_ms"] / row["fastnn_fwd_ms"]
                    row["fb_ratio"] = row["torch_fb_ms"] / row["fastnn_fb_ms"]
                session.row(row)
                rows.append(row)
    return rows


# ------------------------------------------------------------------ distributed

def add_distributed_arguments(p):
    p.add_argument("--batch", type=int, default=64, help="global batch size (default: 64)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per sample (default: 30)")
    p.add_argument("--ranks", type=int, default=2, help="MPI ranks (default: 2)")
    p.add_argument("--bucket-mb", type=float, default=4.0,
                   help="DistributedOptimizer's bucket size in MiB (default: 4)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def run_distributed(args, session):
    """The seed's CNN (valid padding: Conv32-pool-Conv64-pool-Conv128-pool-
    Dense512-Dense10, Adam) trained with DistributedOptimizer on a global
    batch: 1 process x R threads against R ranks x 1 thread (mpiexec), and
    1 process x 1 thread for scale, each in its own job, in turns; images/s
    and what a step spends averaging the gradients. Speedup is against
    1 process x R threads."""
    import shutil
    import subprocess
    if args.worker:
        return distributed_worker(args)
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if mpiexec is None:
        raise BenchError("distributed: no mpiexec found; pip install '.[distributed]'")
    r = args.ranks
    common = [sys.executable, os.path.abspath(__file__), "distributed", "--worker",
              "--batch", str(args.batch), "--steps", str(args.steps),
              "--bucket-mb", str(args.bucket_mb), "--repeat", "1"]
    jobs = {"1 proc x 1 thr": (common + ["--threads", "1"], 1),
            f"1 proc x {r} thr": (common + ["--threads", str(r)], r),
            f"{r} ranks x 1 thr": ([mpiexec, "-n", str(r), "--oversubscribe"] + common
                                   + ["--threads", "1"], 1)}
    print(f"timing: the best of {args.repeat} jobs of {args.steps} steps of global batch "
          f"{args.batch} (after 3 warm-up steps), the two kinds of job in turns")
    best = {}
    for rep in range(args.repeat):
        for name in (list(jobs) if rep % 2 == 0 else list(reversed(jobs))):
            cmd, threads = jobs[name]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                       OPENBLAS_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
                       OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("DISTRIBUTED ")]
            if done.returncode != 0 or not lines:
                raise BenchError(f"distributed: {name} failed:\n{done.stderr[-2000:]}")
            result = json.loads(lines[-1][len("DISTRIBUTED "):])
            if name not in best or result["step_s"] < best[name]["step_s"]:
                best[name] = result
    session.table([("job", "job", ""), ("ms/step", "ms", ".1f"), ("images/s", "images_s", ",.0f"),
                   ("allreduce ms", "allreduce_ms", ".2f"), ("pack ms", "pack_ms", ".2f"),
                   ("bare allreduce ms", "bare_ms", ".2f"), ("speedup", "speedup", ".2f")])
    base = best[f"1 proc x {r} thr"]["step_s"]
    rows = []
    for name, res in best.items():
        row = {"bench": "distributed", "job": name, "ms": res["step_s"] * 1e3,
               "images_s": args.batch / res["step_s"], "speedup": base / res["step_s"]}
        if res["ranks"] > 1:
            row.update(allreduce_ms=res["allreduce_s"] * 1e3, bare_ms=res["bare_allreduce_s"] * 1e3,
                       pack_ms=(res["pack_s"] + res["unpack_s"]) * 1e3)
        session.row(row)
        rows.append(row)
    print("allreduce ms: the gradients' allreduce inside a step (waiting for the slower rank "
          "included); pack ms: copying them into and out of the buckets; bare allreduce ms: "
          "the same buffers reduced alone, right after a barrier")
    return rows


def distributed_worker(args):
    """One job of run_distributed: rank 0 prints DISTRIBUTED {json}."""
    from fastnn import distributed, nn
    from fastnn import functional as F
    from fastnn.optim import Adam
    distributed.init()
    fastnn.set_num_threads(args.threads[0])
    rank, size = distributed.rank(), distributed.world_size()
    fastnn.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, 3, activation="relu"), nn.MaxPooling2D(),
        nn.Conv2D(64, 3, activation="relu"), nn.MaxPooling2D(),
        nn.Conv2D(128, 3, activation="relu"), nn.MaxPooling2D(),
        nn.Flatten(), nn.Dense(512, activation="relu"), nn.Dense(10)])
    model(np.zeros((1, 32, 32, 3), np.float32))
    opt = distributed.DistributedOptimizer(Adam(model.parameters(), lr=1e-3),
                                           bucket_bytes=int(args.bucket_mb * (1 << 20)))
    rng = np.random.default_rng(1)
    n = args.batch
    rows = slice(rank * n // size, (rank + 1) * n // size)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)[rows]
    y = fastnn.tensor(rng.integers(0, 10, n)[rows])

    def step():
        opt.zero_grad()
        F.cross_entropy(model(fastnn.tensor(x)), y).backward()
        opt.step()

    for _ in range(3):
        step()
    reducer = opt._reducer
    reducer.seconds = dict.fromkeys(reducer.seconds, 0.0)
    distributed.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    elapsed = time.perf_counter() - t0
    bare = float("nan")
    if size > 1:
        from mpi4py import MPI
        buffers = [b.buffer for b in reducer._buckets]
        bare = float("inf")
        for _ in range(100):  # the best: both ranks on a core at once
            distributed.barrier()
            t = time.perf_counter()
            MPI.Request.Waitall([MPI.COMM_WORLD.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM)
                                 for b in buffers])
            bare = min(bare, time.perf_counter() - t)
    result = {"ranks": size, "step_s": distributed.allreduce(elapsed / args.steps, op="max"),
              "allreduce_s": reducer.seconds["allreduce"] / args.steps,
              "pack_s": reducer.seconds["pack"] / args.steps,
              "unpack_s": reducer.seconds["unpack"] / args.steps,
              "bare_allreduce_s": bare, "buckets": len(reducer._buckets)}
    if rank == 0:
        print("DISTRIBUTED " + json.dumps(result), flush=True)
    return []


# ------------------------------------------------------------------ main

# name -> (help, add_arguments(parser), run(args, session) -> list of row dicts)
SUBCOMMANDS = {
    "gemm": ("float32 C = A @ B: fastnn.kernels.gemm against np.dot",
             add_gemm_arguments, run_gemm),
    "overhead": ("one training step of a small MLP (784-128-10, SGD): fastnn against PyTorch",
                 add_overhead_arguments, run_overhead),
    "conv": ("the flagship CNN's layers, forward and forward+backward, and its whole "
             "training step (or, with --sweep, common layer shapes): fastnn against PyTorch",
             add_conv_arguments, run_conv),
    "optim": ("one Adam step over the flagship CNN's parameters: fastnn against PyTorch",
              add_optim_arguments, run_optim),
    "train": ("training the flagship CNN (model.fit, Adam): fastnn against PyTorch and Keras",
              add_train_arguments, run_train),
    "augment": ("ImageDataGenerator.flow (rotation, shifts, flips), images/s: fastnn against "
                "PyTorch's affine_grid + grid_sample", add_augment_arguments, run_augment),
    "rnn": ("LSTM and GRU layers, forward and forward+backward: fastnn against PyTorch",
            add_rnn_arguments, run_rnn),
    "distributed": ("the seed's CNN trained over MPI: 1 process x R threads against R ranks "
                    "x 1 thread, images/s and the time spent averaging gradients",
                    add_distributed_arguments, run_distributed),
}


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", nargs="+", type=int, default=[1, 2], metavar="N",
                        help="thread counts, the same for fastnn and NumPy (default: 1 2)")
    common.add_argument("--repeat", type=int, default=5, metavar="R",
                        help="timed samples per library and row; the best is reported "
                             "(default: 5)")
    common.add_argument("--min-time", type=float, default=0.2, metavar="S",
                        help="seconds each sample runs at least (default: 0.2)")
    common.add_argument("--isa", choices=["generic", "avx2", "avx512"],
                        help="force fastnn's SIMD path (default: the best this CPU runs, "
                             "or FASTNN_ISA)")
    common.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="BENCH")
    for name, (help_text, add_arguments, _) in SUBCOMMANDS.items():
        add_arguments(sub.add_parser(name, parents=[common], help=help_text,
                                     description=help_text))
    args = parser.parse_args(argv)
    if min(args.threads) < 1:
        parser.error("--threads: every count must be >= 1")
    if args.repeat < 1 or args.min_time <= 0:
        parser.error("--repeat must be >= 1 and --min-time > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.isa:
        fastnn._C.set_isa(args.isa)
    session = Session(args)
    environment = describe_environment(session)
    _, _, run = SUBCOMMANDS[args.command]
    try:
        rows = run(args, session)
    except BenchError as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": args.command, "argv": sys.argv, "environment": environment,
                       "peak_gflops": session.peaks, "rows": rows}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
