#!/usr/bin/env bash
# Run the benchmark suite on a GPU machine and keep its JSON.
#
#   scripts/gpu_bench.sh                      # every benchmark, full size
#   scripts/gpu_bench.sh throughput explore   # only these
#   QUICK=1 scripts/gpu_bench.sh              # small sizes (a smoke run)
#   ALLOW_CPU=1 QUICK=1 scripts/gpu_bench.sh  # dry run of this script where there is no GPU
#   STORE_ONLY=1 scripts/gpu_bench.sh         # only the exploration store at STORE_N settings
#
# After the suite it explores STORE_N settings (default 10^9) into a Zarr store on disk, beside
# in-memory streaming of as many, and records settings/s, the fraction of the roofline and peak
# host memory in benchmarks/results/explore_store_<STORE_N>_gpu.json (STORE_N=0 skips it). The
# store takes 60 bytes a setting (60 GB for 10^9) in $NEURALEQ_BENCH_STORE_DIR (default: the
# temporary folder) and is removed afterwards.
#
# Environment: PYTHON (default: python3 of the active environment) must have neuraleq_jax and a
# CUDA build of jax installed, e.g. `pip install -e . "jax[cuda12]"`; INSTALL=1 runs that first.
# The JSON lands in benchmarks/results/run_<UTC time>_gpu.json; commit it with
#   git add benchmarks/results/run_*_gpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if [[ "${INSTALL:-0}" == 1 ]]; then
  "$PYTHON" -m pip install -e . "jax[cuda12]"
fi

# The explore benchmark runs each mode in a child process beside the parent: neither may grab
# most of the GPU's memory up front (JAX's default), or the child cannot start.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"

backend="$("$PYTHON" -c 'import jax; print(jax.default_backend())')"
if [[ "$backend" != "gpu" && "${ALLOW_CPU:-0}" != 1 ]]; then
  echo "gpu_bench: JAX sees no GPU (default backend: $backend)." >&2
  echo "  install a CUDA build of jax (INSTALL=1 does: pip install -e . 'jax[cuda12]')," >&2
  echo "  or set ALLOW_CPU=1 to run the suite on $backend anyway." >&2
  exit 2
fi

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$PYTHON" -c 'import jax; print("jax", jax.__version__, "devices:", jax.devices())'

STORE_N="${STORE_N:-1000000000}"
store_dir="${NEURALEQ_BENCH_STORE_DIR:-${TMPDIR:-/tmp}}"
if [[ "$STORE_N" != 0 ]]; then
  need=$(( STORE_N * 64 ))
  free="$(df --output=avail -B1 "$store_dir" | tail -n 1)"
  if (( free < need )); then
    echo "gpu_bench: a store of $STORE_N settings needs about $need bytes; $store_dir has $free." >&2
    echo "  set NEURALEQ_BENCH_STORE_DIR to a larger disk, or a smaller STORE_N (0 skips it)." >&2
    exit 2
  fi
fi

args=("$@")
if [[ "${QUICK:-0}" == 1 ]]; then
  args+=(--quick)
fi
if [[ "${STORE_ONLY:-0}" != 1 ]]; then
  "$PYTHON" -m benchmarks "${args[@]}"
fi
if [[ "$STORE_N" != 0 ]]; then
  NEURALEQ_BENCH_STORE_DIR="$store_dir" "$PYTHON" -m benchmarks.bench_explore --store-only "$STORE_N"
fi
newest="$(ls -t benchmarks/results/run_*_gpu.json 2>/dev/null | head -n 1 || true)"
echo "gpu_bench: done; newest GPU result: ${newest:-none (a --quick run keeps no file in git)}"
