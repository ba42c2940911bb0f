#!/usr/bin/env bash
# The one prepared check for a GPU machine, run from the repository root:
#   OUT=/some/dir bash bench/gpu_check.sh
# Builds fastnn with CUDA (no network: system cmake/ninja/nvcc/pybind11/
# scikit-build-core/torch), runs the CUDA tests (under compute-sanitizer's
# memcheck too, on small shapes, when it is installed), the CPU tests
# briefly, and bench/gpu_gemm.py. Every step has its own time limit, cut to
# what is left of $GPU_CHECK_BUDGET (540 s), most important steps first;
# the logs (8 files) go to $OUT:
#   summary.txt env.txt build.txt info.txt test_cuda.txt test_cpu.txt
#   bench.txt bench.json
# Exits non-zero when any step failed.
set -u
OUT=${OUT:-/tmp/fastnn-gpu-check}
BUDGET=${GPU_CHECK_BUDGET:-540}  # seconds for the whole script: a device call may run 600
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
REPO=$PWD
status=0
start=$SECONDS

log() { echo "[$((SECONDS - start))s] $*" | tee -a "$OUT/summary.txt"; }
step() {  # step NAME LIMIT_S LOGFILE CMD...: runs CMD within the budget left
  local name=$1 limit=$2 file=$3
  shift 3
  local left=$((BUDGET - (SECONDS - start) - 15))
  if [ "$left" -lt 20 ]; then log "$name: SKIPPED (budget spent)"; status=1; return 1; fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "$name: start (limit ${limit}s)"
  timeout --kill-after=5 "$limit" "$@" >>"$OUT/$file" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then log "$name: ok"; else log "$name: FAILED rc=$rc (see $file)"; status=1; fi
  return $rc
}

{
  date
  nvidia-smi || true
  nvcc --version || true
  cmake --version | head -1
  python --version
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || true
  command -v compute-sanitizer || echo "compute-sanitizer: not found"
  nproc
} >"$OUT/env.txt" 2>&1

# A virtual environment that sees the system's build tools and torch; nothing
# is downloaded (--no-build-isolation --no-deps).
VENV=/tmp/fastnn-gpu-venv
python -m venv --system-site-packages "$VENV" >>"$OUT/build.txt" 2>&1
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
export FASTNN_CUDA=ON
if ! step build 270 build.txt pip install --no-build-isolation --no-deps --no-index -v "$REPO"; then
  log "build failed: stopping"
  exit 1
fi

# Outside the repository, so that `import fastnn` is the installed package.
cd /tmp
step info 30 info.txt python -c "
import fastnn, fastnn.cuda as c
print(fastnn.build_info())
print('device_count', c.device_count(), c.get_device_properties(0) if c.is_available() else '')
assert c.is_available(), 'the CUDA build sees no GPU'"

step test_cuda 120 test_cuda.txt \
  python -m pytest -q -p no:cacheprovider -rs "$REPO/tests/test_cuda_gemm.py"

step bench 100 bench.txt \
  python "$REPO/bench/gpu_gemm.py" --layers --json "$OUT/bench.json"
echo >>"$OUT/bench.txt"
step bench_trans 40 bench.txt \
  python "$REPO/bench/gpu_gemm.py" --sizes 4096 --all-trans --seconds 0.15
grep -E "^ *4096 +4096 +4096" "$OUT/bench.txt" | sed 's/^/4096^2: /' | tee -a "$OUT/summary.txt"

if command -v compute-sanitizer >/dev/null; then
  # Out-of-bounds or misaligned device accesses on the odd shapes (small
  # ones: memcheck is slow), beyond what the results alone can show.
  echo "=== compute-sanitizer --tool memcheck ===" >>"$OUT/test_cuda.txt"
  step memcheck 60 test_cuda.txt compute-sanitizer --tool memcheck --error-exitcode 9 \
    python -m pytest -q -p no:cacheprovider "$REPO/tests/test_cuda_gemm.py" \
    -k "matches_float64 and not 2048 and not 16384 and not 4096 and not 1031 or beta_zero or c_may_be"
fi

step test_cpu 60 test_cpu.txt \
  python -m pytest -q -x -p no:cacheprovider "$REPO/tests" --ignore="$REPO/tests/test_cuda_gemm.py"

log "done, status $status"
exit $status
