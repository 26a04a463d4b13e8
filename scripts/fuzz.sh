#!/usr/bin/env bash
# Fuzzes the native parsers of untrusted bytes (native/fuzz/parsers_fuzzer.cc: the JSON reader and the safetensors
# header check) with libFuzzer under AddressSanitizer and UndefinedBehaviorSanitizer.
#   scripts/fuzz.sh [SECONDS]          run for SECONDS (default 60; CI runs the default)
#   RUNS=1000000 scripts/fuzz.sh       run exactly that many executions instead
# Needs clang with libFuzzer (Debian: apt-get install clang-14 libclang-rt-14-dev). New inputs that reach new code
# go to fuzz/corpus/ (commit them); a finding is written to build/fuzz/crash-* and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${CXX:-$(command -v clang++ || command -v clang++-14 || true)}
[ -n "$CXX" ] || { echo "fuzz: no clang++ (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p build/fuzz fuzz/corpus
BIN=build/fuzz/parsers_fuzzer
"$CXX" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Inative \
  native/fuzz/parsers_fuzzer.cc native/model/json.cc native/model/safetensors_header.cc -o "$BIN"

# Seeds: the corpus, plus the headers of the fixtures' checkpoints with a little of their data (made here, so that
# a changed fixture seeds the run without a copy in the repo).
SEEDS=build/fuzz/seeds
rm -rf "$SEEDS" && mkdir -p "$SEEDS"
node scripts/fuzz-seeds.mjs "$SEEDS"

if [ -n "${RUNS:-}" ]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="${1:-60}"); fi
# The run grows a working copy of the corpus; inputs up to 16 KiB (the fixtures' headers are ~3 KiB); one that
# takes over 10 s or 2 GiB is a finding too.
WORK=build/fuzz/work
rm -rf "$WORK" && cp -r fuzz/corpus "$WORK"
"$BIN" "${limit[@]}" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix=build/fuzz/ "$WORK" "$SEEDS" >build/fuzz/last-run.log 2>&1 || true
grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|ERROR|SUMMARY" build/fuzz/last-run.log || true
grep -q "ERROR: \|SUMMARY: " build/fuzz/last-run.log && { echo "fuzz: a finding (see build/fuzz/last-run.log and build/fuzz/crash-*)" >&2; exit 1; }
# Only inputs that reach new code join the committed corpus.
"$BIN" -merge=1 -max_len=16384 fuzz/corpus "$WORK" >build/fuzz/merge.log 2>&1
echo "fuzz: no finding ($(ls fuzz/corpus | wc -l) inputs in fuzz/corpus)"
