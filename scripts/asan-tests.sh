#!/usr/bin/env bash
# Runs test files under AddressSanitizer + UBSan: builds build-asan/prefix_rl.node (npm run build:native --
# --sanitize), preloads the sanitizer runtime into node (which is not instrumented) and points the loader at the
# instrumented addon. Leak checking is off: node and libtorch keep process-lifetime allocations at exit.
#   scripts/asan-tests.sh test/rm-train.test.ts test/rl-train.test.ts
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-asan/prefix_rl.node ] && [ -z "${REBUILD:-}" ] || node scripts/build-native.mjs --sanitize
runtime=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
export LD_PRELOAD="$runtime:$ubsan"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1:detect_odr_violation=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PREFIX_RL_ADDON="$PWD/build-asan/prefix_rl.node"
node --expose-gc --experimental-vm-modules node_modules/jest/bin/jest.js --runInBand "$@"
