#!/usr/bin/env bash
# GPU validation in one script, for a machine with a CUDA PyTorch (python3), nvcc and cmake but no node of its own:
#   1. builds the addon with plain cmake against torch.utils.cmake_prefix_path (CUDA kernels required; Gloo's headers
#      from .gpu/gloo-include, NCCL's from the torch wheel's nvidia-nccl; if the build with NCCL fails, once more
#      without it, reported as a failure);
#   2. checks the link: one shared libcudart, libtorch_cuda, the kernels' architectures;
#   3. runs the CUDA parity tests (test/cuda/cases.ts) under node's test runner with CUDA_LAUNCH_BLOCKING=1, then
#      compute-sanitizer memcheck and racecheck on the small cases;
#   4. runs the benchmark (benchmarks/gpu/bench.ts) and prints its table;
#   5. with 2 GPUs or more, NCCL's all-reduce bus bandwidth over all of them (benchmarks/allreduce.ts).
# Prepare on a machine with node and this repo's node_modules: `npm run gpu:prepare` (writes .gpu/, which travels with
# the working tree). Then here: `bash benchmarks/gpu/run.sh [OUT_DIR]`; the logs and the table land in OUT_DIR
# (default $OUT, else /tmp/prefix-rl-gpu). Meant to finish in under 8 minutes on one H100/H200.
#
# Overrides: TORCH_CMAKE_PREFIX (libtorch's cmake prefix), PREFIX_RL_CUDA (ON; AUTO builds without kernels where
# there is no nvcc), PREFIX_RL_PARITY_DEVICE / PREFIX_RL_BENCH_DEVICE (cpu: a dry run of this script without a GPU),
# SKIP_SANITIZER=1, BENCH_ARGS (e.g. --quick).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT_DIR=${1:-${OUT:-/tmp/prefix-rl-gpu}}
mkdir -p "$OUT_DIR"
START=$SECONDS
status=0
step() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - START)); }
fail() {
  echo "FAILED: $1"
  status=1
}

[ -f .gpu/node.xz ] && [ -f .gpu/cuda-tests.mjs ] || {
  echo "no .gpu/: run 'npm run gpu:prepare' where node and node_modules are, and carry .gpu"
  exit 2
}
NODE=/tmp/prefix-rl-node
[ -x "$NODE" ] || { xz -dc .gpu/node.xz >"$NODE" && chmod +x "$NODE"; }
# The build looks for the Node-API headers under node_modules/.
[ -e node_modules ] || ln -s .gpu/node_modules node_modules

step "environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available"
command -v nvcc >/dev/null && nvcc --version | tail -1
TORCH_CMAKE_PREFIX=${TORCH_CMAKE_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || true
"$NODE" --version

step "build (plain cmake)"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
# A build tree configured against another libtorch or nvcc is started afresh: when CMake has to reset its cache for a
# new compiler it drops the -D flags, so the reconfigure would miss the libtorch.
if [ -f build-gpu/CMakeCache.txt ] && ! { grep -qF "CMAKE_PREFIX_PATH:UNINITIALIZED=$TORCH_CMAKE_PREFIX" build-gpu/CMakeCache.txt &&
  grep '^CMAKE_CUDA_COMPILER:' build-gpu/CMakeCache.txt | grep -qF "=$NVCC"; }; then
  rm -rf build-gpu
fi
GLOO_ARGS=()
[ -d .gpu/gloo-include/gloo ] && GLOO_ARGS=(-DGLOO_INCLUDE_DIR="$ROOT/.gpu/gloo-include")
build() { # $1: PREFIX_RL_WITH_NCCL (AUTO or OFF)
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_CMAKE_PREFIX" \
    -DPREFIX_RL_CUDA="${PREFIX_RL_CUDA:-ON}" -DCMAKE_CUDA_COMPILER="$NVCC" -DPREFIX_RL_CUDA_ARCHITECTURES=90 \
    -DPREFIX_RL_WITH_NCCL="$1" ${GLOO_ARGS[@]+"${GLOO_ARGS[@]}"} >"$OUT_DIR/cmake.log" 2>&1 || {
    tail -30 "$OUT_DIR/cmake.log"
    echo "FAILED: cmake configure"
    exit 1
  }
  grep 'prefix-rl:' "$OUT_DIR/cmake.log"
  cmake --build build-gpu -j "$(nproc)" >"$OUT_DIR/build.log" 2>&1
}
if ! build AUTO; then
  grep -E 'error|Error' "$OUT_DIR/build.log" | head -30
  if grep -q 'reduce over c10d NCCL' "$OUT_DIR/cmake.log"; then
    fail "build with NCCL (again without it, so that the rest still runs)"
    cp "$OUT_DIR/build.log" "$OUT_DIR/build-nccl.log"
    build OFF || { grep -E 'error|Error' "$OUT_DIR/build.log" | head -30; echo "FAILED: build"; exit 1; }
  else
    echo "FAILED: build"
    exit 1
  fi
fi
mkdir -p build/Release && cp build-gpu/prefix_rl.node build/Release/prefix_rl.node
"$NODE" -e "const a = require('./build/Release/prefix_rl.node'); console.log(JSON.stringify({ build: a.buildInfo(), devices: a.runtimeInfo().cudaDevices }))" ||
  fail "the addon does not load"

step "link check"
ADDON=build/Release/prefix_rl.node
ldd "$ADDON" | grep -E 'cudart|torch_cuda|c10_cuda' || echo "(no CUDA libraries linked)"
cudarts=$(ldd "$ADDON" | grep -c 'libcudart')
echo "libcudart copies linked: $cudarts"
[ "$cudarts" -le 1 ] || fail "more than one CUDA runtime"
if nm -C "$ADDON" 2>/dev/null | grep -q 'cudart_static\|__cudart'; then fail "a static CUDA runtime is linked into the addon"; fi
readelf -d "$ADDON" | grep -E 'NEEDED|RUNPATH' | head -20
command -v cuobjdump >/dev/null && cuobjdump --list-elf "$ADDON" 2>/dev/null | head -5

step "CUDA parity tests (CUDA_LAUNCH_BLOCKING=1)"
CUDA_LAUNCH_BLOCKING=1 "$NODE" --test --test-reporter=spec .gpu/cuda-tests.mjs 2>&1 | tee "$OUT_DIR/cuda-tests.log" | tail -45
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "CUDA parity tests"

if [ "${SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer --tool $tool (small cases)"
    timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 9 "$NODE" --test --test-name-pattern='−inf|ties|float64' \
      .gpu/cuda-tests.mjs >"$OUT_DIR/sanitizer-$tool.log" 2>&1
    code=$?
    grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|not supported|^# (pass|fail)' "$OUT_DIR/sanitizer-$tool.log" | head -8
    case $code in
      0) ;;
      9) fail "compute-sanitizer $tool found errors" ;;
      124) echo "compute-sanitizer $tool: timed out (not counted)" ;;
      *) echo "compute-sanitizer $tool: exit $code (see sanitizer-$tool.log; not counted)" ;;
    esac
  done
fi

step "benchmark"
"$NODE" .gpu/gpu-bench.mjs --out="$OUT_DIR/gpu-bench.md" ${BENCH_ARGS:-} 2>&1 | tee "$OUT_DIR/gpu-bench.log" || fail "benchmark"

step "all-reduce bandwidth over every GPU (one rank each)"
"$NODE" .gpu/allreduce.mjs --device="${PREFIX_RL_BENCH_DEVICE:-cuda}" 2>&1 | tee "$OUT_DIR/allreduce.md" || fail "all-reduce benchmark"

step "done: $([ $status -eq 0 ] && echo ok || echo 'with failures')"
cd "$ROOT" && exit $status
