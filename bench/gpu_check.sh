#!/usr/bin/env bash
# The one prepared check for a GPU machine, run from the repository root:
#   OUT=/some/dir bash bench/gpu_check.sh
# Builds fastnn with CUDA and installs it into $FASTNN_SITE (default
# /tmp/fastnn-site) with the image's own python3 and its packages (no
# network, no venv: cmake/ninja/nvcc, pybind11, scikit-build-core, torch),
# runs the CUDA tests (under compute-sanitizer's memcheck too, on small
# shapes, when it is installed), the CPU tests
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

# On the GPU machine python3 is itself a venv (the one holding torch); a venv
# made from it would not see its packages, so none is made.
PY=python3
SITE=${FASTNN_SITE:-/tmp/fastnn-site}

{
  date
  nvidia-smi || true
  nvcc --version || true
  for tool in $PY cmake ninja nvcc compute-sanitizer; do
    echo "$tool: $(command -v "$tool" || echo 'not found')"
  done
  cmake --version | head -1
  $PY -c "import sys; print(sys.version); print('prefix', sys.prefix, 'base', sys.base_prefix)"
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || true
  $PY -m pip --version
  nproc
} >"$OUT/env.txt" 2>&1

# The packages the offline build and the steps after it need, all from the
# image: say which are missing before anything depends on them.
if ! $PY -c "import scikit_build_core, pybind11, numpy, pytest, torch" >>"$OUT/env.txt" 2>&1; then
  missing=$($PY -c "
import importlib.util as u
print(' '.join(m for m in ['scikit_build_core', 'pybind11', 'numpy', 'pytest', 'torch',
                           'hypothesis'] if u.find_spec(m) is None))")
  log "python modules missing from $PY: ${missing:-?} (torch: no cuBLAS column; hypothesis: only tests/test_gemm.py needs it)"
  for m in scikit_build_core pybind11 numpy; do
    case " $missing " in *" $m "*) log "cannot build without $m: stopping"; exit 1 ;; esac
  done
fi

# Installed into a folder of our own (--target): nothing is downloaded, and
# the build tools are the image's (--no-build-isolation --no-deps --no-index).
# The build folder is outside the repository, so no stale CMake cache from
# the working tree is picked up.
rm -rf "$SITE" /tmp/fastnn-gpu-build
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
export FASTNN_CUDA=ON SKBUILD_BUILD_DIR=/tmp/fastnn-gpu-build
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
if ! step build 270 build.txt $PY -m pip install --no-build-isolation --no-deps --no-index \
    --target "$SITE" -v "$REPO"; then
  log "build failed: stopping"
  exit 1
fi

# Outside the repository, so that `import fastnn` is the installed package
# (checked: python/fastnn in the tree has no CUDA module).
export PYTHONPATH=$SITE
cd /tmp
if ! step info 30 info.txt $PY -c "
import os, fastnn, fastnn.cuda as c
print(fastnn.__file__)
assert os.path.realpath(fastnn.__file__).startswith(os.path.realpath('$SITE') + os.sep), \\
    'fastnn is not imported from $SITE'
print(fastnn.build_info())
assert c.is_built(), 'fastnn was built without its CUDA module'
print('device_count', c.device_count(), c.get_device_properties(0) if c.is_available() else '')
assert c.is_available(), 'the CUDA build sees no GPU: ' + c._C_cuda.init_error()"; then
  log "no usable GPU or not the installed fastnn (see info.txt): stopping"
  exit 1
fi

CUDA_TESTS="$REPO/tests/test_cuda_gemm.py $REPO/tests/test_cuda_ops.py $REPO/tests/test_cuda_conv.py $REPO/tests/test_autograd_devices.py"
# shellcheck disable=SC2086
step test_cuda 150 test_cuda.txt \
  $PY -m pytest -q -p no:cacheprovider -rs $CUDA_TESTS

step bench 100 bench.txt \
  $PY "$REPO/bench/gpu_gemm.py" --layers --json "$OUT/bench.json"
echo >>"$OUT/bench.txt"
step bench_trans 40 bench.txt \
  $PY "$REPO/bench/gpu_gemm.py" --sizes 4096 --all-trans --seconds 0.15
grep -E "^ *4096 +4096 +4096" "$OUT/bench.txt" | sed 's/^/4096^2: /' | tee -a "$OUT/summary.txt"

if command -v compute-sanitizer >/dev/null; then
  # Out-of-bounds or misaligned device accesses on the odd shapes (small
  # ones: memcheck is slow), beyond what the results alone can show.
  echo "=== compute-sanitizer --tool memcheck ===" >>"$OUT/test_cuda.txt"
  step memcheck 60 test_cuda.txt compute-sanitizer --tool memcheck --error-exitcode 9 \
    $PY -m pytest -q -p no:cacheprovider "$REPO/tests/test_cuda_gemm.py" \
    -k "matches_float64 and not 2048 and not 16384 and not 4096 and not 1031 or beta_zero or c_may_be"
  step memcheck_ops 60 test_cuda.txt compute-sanitizer --tool memcheck --error-exitcode 9 \
    $PY -m pytest -q -p no:cacheprovider "$REPO/tests/test_autograd_devices.py" -k "cuda and not fake"
fi

step test_cpu 60 test_cpu.txt \
  $PY -m pytest -q -x -p no:cacheprovider "$REPO/tests" --ignore="$REPO/tests/test_cuda_gemm.py" \
  --ignore="$REPO/tests/test_cuda_ops.py" --ignore="$REPO/tests/test_cuda_conv.py" \
  --ignore="$REPO/tests/test_autograd_devices.py"

log "done, status $status"
exit $status
