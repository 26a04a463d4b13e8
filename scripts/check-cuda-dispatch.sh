#!/usr/bin/env bash
# Compiles (syntax and types, no code) the ATen side of the CUDA kernels' dispatch (native/ops/logprobs.cc with
# PREFIX_RL_CUDA_KERNELS) against the CUDA headers, so that the path a CUDA libtorch build takes never rots on
# CPU-only machines. Needs the CUDA toolkit headers; skips (exit 0) without them.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda_include=$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/../include
[ -f "$cuda_include/cuda_runtime_api.h" ] || cuda_include=/usr/local/cuda-13.0/include
if [ ! -f "$cuda_include/cuda_runtime_api.h" ]; then echo "check-cuda-dispatch: no CUDA headers, skipped"; exit 0; fi
torch_root=$(node scripts/find-libtorch.mjs --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).root))')
# A CPU libtorch ships the c10/cuda headers but not the generated macros header: an empty one stands in.
stub=$(mktemp -d)
mkdir -p "$stub/c10/cuda/impl" && echo '#pragma once' > "$stub/c10/cuda/impl/cuda_cmake_macros.h"
g++ -std=c++17 -fsyntax-only -DPREFIX_RL_CUDA_KERNELS=1 -D_GLIBCXX_USE_CXX11_ABI=1 \
  -Inative -Inode_modules/node-api-headers/include -Inode_modules/node-addon-api \
  -isystem "$torch_root/include" -isystem "$torch_root/include/torch/csrc/api/include" \
  -isystem "$cuda_include" -isystem "$stub" native/ops/logprobs.cc
echo "check-cuda-dispatch: native/ops/logprobs.cc compiles with the CUDA kernels enabled"
