#!/usr/bin/env bash
# Compiles (syntax only) the addon's CUDA-only code paths — what `#ifdef PREFIX_RL_TORCH_CUDA` / PREFIX_RL_CUDA_KERNELS
# / PREFIX_RL_NCCL hide from a CPU build — against this machine's libtorch headers and CUDA toolkit headers, so that
# a change to them is checked without a GPU or a CUDA libtorch. A CPU libtorch lacks one generated header
# (cuda_cmake_macros.h); an empty stand-in is made for it. Usage: bash scripts/check-cuda-sources.sh (needs the
# toolkit's headers under CUDA_HOME — cuda_runtime.h, cublas, cusparse, cusolver — and, for the NCCL process group,
# nccl.h under NCCL_HOME/include and Gloo's headers in /usr/include; pip's nvidia-* wheels unpacked serve too).
set -euo pipefail
cd "$(dirname "$0")/.."
torch=$(node scripts/find-libtorch.mjs --json | node -e "process.stdout.write(JSON.parse(require('fs').readFileSync(0, 'utf8')).root)")
cuda=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")}
[ -f "$cuda/include/cuda_runtime.h" ] || { echo "no CUDA headers under $cuda (set CUDA_HOME)"; exit 2; }
# libtorch 2.14 and later need C++20, as in CMakeLists.txt.
std=gnu++17
grep -q 'C++20 or later' "$torch/include/ATen/ATen.h" && std=gnu++20
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl" && touch "$stub/c10/cuda/impl/cuda_cmake_macros.h"
status=0
# check LABEL [compiler args...] FILE: a syntax-only compile against libtorch's and the toolkit's headers.
check() {
  local label=$1
  shift
  if c++ -std=$std -fsyntax-only -Wall -Wno-unused-parameter -DNAPI_CPP_EXCEPTIONS -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED \
    -DPREFIX_RL_TORCH_CUDA=1 -I node_modules/node-api-headers/include -I node_modules/node-addon-api -I native -isystem "$stub" \
    -isystem "$torch/include" -isystem "$torch/include/torch/csrc/api/include" -isystem "$cuda/include" "$@"; then
    echo "ok      $label"
  else
    echo "FAILED  $label"
    status=1
  fi
}
for file in $(grep -l 'PREFIX_RL_TORCH_CUDA\|PREFIX_RL_CUDA_KERNELS' native/*.cc native/*/*.cc); do
  check "$file" -DPREFIX_RL_BUILD_TYPE='"Release"' -DPREFIX_RL_TORCH_LIB_DIR='"-"' -DPREFIX_RL_CUDA_COMPILED=1 -DPREFIX_RL_CUDA_KERNELS=1 "$file"
done
nccl=${NCCL_HOME:-$cuda}
if [ -f "$nccl/include/nccl.h" ] && [ -d /usr/include/gloo ]; then
  mkdir -p "$stub/gloo-shim" && ln -s /usr/include/gloo "$stub/gloo-shim/gloo"
  check "native/distributed.cc (NCCL)" -DUSE_C10D_GLOO -DPREFIX_RL_GLOO=1 -DUSE_C10D_NCCL -DPREFIX_RL_NCCL=1 -isystem "$stub/gloo-shim" \
    -isystem "$nccl/include" native/distributed.cc
else
  echo "skipped native/distributed.cc (NCCL): no nccl.h under ${nccl}/include or no /usr/include/gloo"
fi
exit $status
