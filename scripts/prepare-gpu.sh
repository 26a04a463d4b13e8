#!/usr/bin/env bash
# Prepares .gpu/ for benchmarks/gpu/run.sh on a GPU machine that has PyTorch and nvcc but no node and no npm
# registry: a standalone node (stripped, xz), the three packages the addon's build and loader need, and the CUDA
# parity tests and the GPU benchmark bundled (esbuild) into one file each, so that no node_modules tree travels.
# Carry `.gpu` to the machine with the working tree, then run `bash benchmarks/gpu/run.sh` there.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf .gpu
mkdir -p .gpu/node_modules
strip -o .gpu/node "$(command -v node)"
xz -T2 -6 .gpu/node
for package in node-api-headers node-addon-api node-gyp-build; do cp -r "node_modules/$package" .gpu/node_modules/; done
# Gloo's headers (Debian's libgloo-dev; the CUDA wheel ships Gloo compiled but not its headers): the data-parallel
# process group, and NCCL's beside it, are built against them there.
if [ -d /usr/include/gloo ]; then
  mkdir -p .gpu/gloo-include && cp -r /usr/include/gloo .gpu/gloo-include/
else
  echo "no /usr/include/gloo (apt install libgloo-dev): the GPU build will have no process groups"
fi

bundle() {
  # createRequire stays a runtime require: the addon is loaded from build/Release through node-gyp-build.
  npx esbuild "$1" --bundle --platform=node --format=esm --target=node20 --log-level=warning --outfile="$2" \
    --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
}
bundle test/cuda/run.ts .gpu/cuda-tests.mjs
bundle benchmarks/gpu/bench.ts .gpu/gpu-bench.mjs
bundle benchmarks/allreduce.ts .gpu/allreduce.mjs
# The chat-template worker (lib/tokenizer/template-sandbox.ts) loads from beside the bundle that starts it.
bundle lib/tokenizer/template-worker.ts .gpu/template-worker.js
du -sh .gpu
