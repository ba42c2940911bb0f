"""fastnn's CUDA SGEMM against cuBLAS (torch.matmul, TF32 off) on one GPU.

    python bench/gpu_gemm.py [--sizes 1024 2048 4096 8192] [--layers] [--all-trans]
                             [--json out.json]

Every result is verified before it is timed: against float64 on a sample of
rows (NumPy), and against torch's float32 product when torch is present.
Both libraries are timed the same way: a batch of calls into a preallocated
output between two synchronisations, the best of several batches.
"""
import argparse
import json
import sys
import time

import numpy as np

import fastnn
from fastnn import cuda

try:
    import torch
except ImportError:  # cuBLAS column left empty
    torch = None

LAYER_SHAPES = [(64, 2048, 512), (64, 512, 10), (4096, 27, 32), (16384, 288, 64)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[1024, 2048, 4096, 8192])
    p.add_argument("--layers", action="store_true", help="also the CNN/RNN layer shapes")
    p.add_argument("--all-trans", action="store_true", help="all four transposes at each shape")
    p.add_argument("--seconds", type=float, default=0.25, help="per timed batch")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()

    if not cuda.is_available():
        sys.exit(f"no CUDA GPU available (fastnn built with CUDA: {cuda.is_built()})")
    props = cuda.get_device_properties(0)
    print(f"GPU: {props['name']}, {props['multiprocessors']} SMs, "
          f"compute capability {props['compute_capability']}")
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False  # the fair float32 figure
        torch.set_float32_matmul_precision("highest")
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, TF32 off")
    else:
        print("torch not found: no cuBLAS column")

    shapes = [(n, n, n) for n in args.sizes] + (LAYER_SHAPES if args.layers else [])
    transposes = ([(False, False), (False, True), (True, False), (True, True)]
                  if args.all_trans else [(False, False)])
    header = (f"{'M':>6} {'K':>6} {'N':>6} {'op':>3} {'fastnn GFLOP/s':>15} "
              f"{'cuBLAS GFLOP/s':>15} {'ratio':>6} {'max rel err':>12}")
    print(header)
    print("-" * len(header))
    rows = []
    failed = False
    for (m, k, n) in shapes:
        for ta, tb in transposes:
            row = bench_one(m, k, n, ta, tb, args.seconds)
            rows.append(row)
            failed |= not row["verified"]
            ratio = f"{row['ratio']:.2f}" if row["ratio"] else "-"
            cublas = f"{row['cublas_gflops']:.0f}" if row["cublas_gflops"] else "-"
            print(f"{m:>6} {k:>6} {n:>6} {('T' if ta else 'N') + ('T' if tb else 'N'):>3} "
                  f"{row['fastnn_gflops']:>15.0f} {cublas:>15} {ratio:>6} "
                  f"{row['max_rel_err']:>12.2e}{'' if row['verified'] else '  WRONG'}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": props, "fastnn": fastnn.build_info(), "rows": rows}, f, indent=1)
    if failed:
        sys.exit("some results did not match the reference")


def bench_one(m, k, n, trans_a, trans_b, seconds):
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    da, db = cuda.to_device(a), cuda.to_device(b)
    dc = cuda.DeviceArray.empty((m, n))

    def run_fastnn():
        cuda.gemm(da, db, trans_a=trans_a, trans_b=trans_b, c=dc)

    run_fastnn()
    got = dc.numpy()
    max_rel, verified = verify_rows(got, a, b, trans_a, trans_b, rng)
    fastnn_s = best_time(run_fastnn, cuda.synchronize, seconds)
    flop = 2.0 * m * n * k
    row = {"m": m, "k": k, "n": n, "trans_a": trans_a, "trans_b": trans_b,
           "fastnn_gflops": flop / fastnn_s / 1e9, "cublas_gflops": None, "ratio": None,
           "max_rel_err": max_rel, "verified": verified}

    if torch is not None:
        ta_ = torch.from_numpy(a).cuda()
        tb_ = torch.from_numpy(b).cuda()
        oa = ta_.t() if trans_a else ta_
        ob = tb_.t() if trans_b else tb_
        tc = torch.empty((m, n), device="cuda", dtype=torch.float32)

        def run_torch():
            torch.matmul(oa, ob, out=tc)

        run_torch()
        # fastnn against cuBLAS, both float32: the same bound as against float64
        ref = tc.cpu().numpy()
        scale = np.abs(ref).max() + 1e-30
        diff = np.abs(got - ref).max() / scale
        if diff > (k + 4) * 2.0 ** -22:
            row["verified"] = False
        row["max_rel_err_vs_cublas"] = float(diff)
        torch_s = best_time(run_torch, torch.cuda.synchronize, seconds)
        row["cublas_gflops"] = flop / torch_s / 1e9
        row["ratio"] = row["fastnn_gflops"] / row["cublas_gflops"]
        del ta_, tb_, oa, ob, tc
    del da, db, dc
    return row


def verify_rows(got, a, b, trans_a, trans_b, rng, sample=64):
    """Max error relative to |A||B| on a sample of rows (all rows when few), in float64."""
    m = got.shape[0]
    if m == 0 or got.shape[1] == 0:
        return 0.0, True
    rows = np.arange(m) if m <= sample else np.sort(rng.choice(m, sample, replace=False))
    a64 = (a.T if trans_a else a)[rows].astype(np.float64)
    b64 = (b.T if trans_b else b).astype(np.float64)
    ref = a64 @ b64
    scale = np.abs(a64) @ np.abs(b64) + 1e-30
    rel = np.abs(got[rows].astype(np.float64) - ref) / scale
    k = a64.shape[1]
    return float(rel.max()), bool(np.all(rel <= (k + 4) * 2.0 ** -23))


def best_time(fn, sync, seconds, batches=5):
    """Seconds per call: the best of `batches` timed batches sized to ~`seconds` each."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, min(10000, int(seconds / once)))
    best = float("inf")
    for _ in range(batches):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


if __name__ == "__main__":
    main()
