#!/usr/bin/env bash
# Side-by-side RL on the controlled task: presets from configs/rl/ (task sizes) from the demo's SFT policy (and its
# IPVRM as the starting reward model of the grid's IPVRM presets; the other online RMs start from the SFT policy), for
# each seed; held-out avg@4 (T 0.6, top-p 0.95) before and after. Needs `npm run demo` first (demo-output/).
# Usage: PRESETS="grpo distrl" bash benchmarks/rl-compare.sh [seeds...]   (default: every preset but the distrl
# alias; seeds 0 1). Prints one JSON line per run and a table.
set -euo pipefail
seeds=("$@")
[[ ${#seeds[@]} -eq 0 ]] && seeds=(0 1)
out=demo-output/rl-compare
mkdir -p $out
results=$out/results.jsonl
: > $results
for seed in "${seeds[@]}"; do
  for algorithm in ${PRESETS:-grpo grpo-dpo grpo-iprm grpo-ipvrm distrl-dpo distrl-iprm distrl-ipvrm prime prime-original}; do
    rm_flag=()
    [[ $algorithm == *-ipvrm || $algorithm == distrl ]] && rm_flag=(--reward-model demo-output/rm-ipvrm)
    node bin/prefix-rl.js rl train --config configs/rl/$algorithm.yaml --model demo-output/sft "${rm_flag[@]}" \
      --data demo-output/task/rl.jsonl --eval-data demo-output/task/rl-test.jsonl --seed "$seed" --set eval.every=0 \
      --out $out/$algorithm-$seed 2> $out/$algorithm-$seed.log | tee -a $results
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const by = {};
for (const r of rows) (by[r.algorithm] ??= []).push(r);
console.log("| algorithm | held-out avg@4 before | after (per seed) | mean gain | seconds per run |");
console.log("|---|---|---|---|---|");
for (const [a, rs] of Object.entries(by)) {
  const gain = rs.reduce((s, r) => s + r.testAccuracy - r.initialTestAccuracy, 0) / rs.length;
  const secs = rs.reduce((s, r) => s + r.seconds, 0) / rs.length;
  console.log(`| ${a} | ${rs[0].initialTestAccuracy.toFixed(3)} | ${rs.map((r) => r.testAccuracy.toFixed(3)).join(" / ")} | ${gain >= 0 ? "+" : ""}${gain.toFixed(3)} | ${secs.toFixed(0)} |`);
}' $results
