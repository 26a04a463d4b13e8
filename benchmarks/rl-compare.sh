#!/usr/bin/env bash
# Stage B on the controlled task, side by side: RL runs from the demo's SFT policy (the grid's IPVRM presets start
# their reward model from the demo's offline IPVRM; the other online RMs start from the SFT policy), for each seed;
# held-out avg@4 (T 0.6, top-p 0.95) before and after, and the reward model's outcome accuracy on the batches
# (reward_model/acc) over the first and last 5 steps. Needs `npm run demo` first (demo-output/).
#   bash benchmarks/rl-compare.sh [seeds...]              every preset but the distrl alias (configs/rl/<preset>.yaml)
#   ABLATION=1 bash benchmarks/rl-compare.sh [seeds...]   the online-update ablation of distrl-ipvrm: frozen RM, naive
#                                                         (no ADB, no DLW), DLW only, ADB only, ADB + DLW
#   PRESETS="grpo distrl-ipvrm" bash benchmarks/rl-compare.sh   a subset of the presets
# Seeds default to 0 1 2. Prints one JSON line per run and a table.
set -euo pipefail
seeds=("$@")
[[ ${#seeds[@]} -eq 0 ]] && seeds=(0 1 2)
if [[ ${ABLATION:-0} == 1 ]]; then
  out=demo-output/rl-ablation
  runs=("frozen:distrl-ipvrm:rewardModel.update=none" "naive:distrl-ipvrm:rewardModel.useAdb=false rewardModel.useDlw=false"
    "dlw-only:distrl-ipvrm:rewardModel.useAdb=false" "adb-only:distrl-ipvrm:rewardModel.useDlw=false" "adb+dlw:distrl-ipvrm:")
else
  out=demo-output/rl-compare
  runs=()
  for preset in ${PRESETS:-grpo grpo-dpo grpo-iprm grpo-ipvrm distrl-dpo distrl-iprm distrl-ipvrm prime prime-original}; do runs+=("$preset:$preset:"); done
fi
mkdir -p $out
results=$out/results.jsonl
: > $results
for seed in "${seeds[@]}"; do
  for run in "${runs[@]}"; do
    IFS=: read -r name preset sets <<< "$run"
    flags=(--set eval.every=0)
    for s in $sets; do flags+=(--set "$s"); done
    [[ $preset == *-ipvrm || $preset == distrl ]] && flags+=(--reward-model demo-output/rm-ipvrm/model)
    dir=$out/$name-$seed
    node bin/prefix-rl.js rl train --config configs/rl/$preset.yaml --model demo-output/sft/model --data demo-output/task/rl.jsonl \
      --eval-data demo-output/task/rl-test.jsonl --seed "$seed" "${flags[@]}" --out "$dir" --overwrite --quiet 2> "$dir.log" |
      node -e '
        const [name, dir] = process.argv.slice(1);
        const fs = require("fs");
        const r = JSON.parse(fs.readFileSync(0, "utf8"));
        const steps = fs.readFileSync(`${dir}/metrics.jsonl`, "utf8").trim().split("\n").map(JSON.parse).filter((s) => s.step > 0);
        const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
        const rmAcc = (part) => mean(part.map((s) => s["reward_model/acc"]).filter((x) => x !== undefined));
        console.log(JSON.stringify({ ...r, name, rmAccuracyFirst5: rmAcc(steps.slice(0, 5)), rmAccuracyLast5: rmAcc(steps.slice(-5)) }));' "$name" "$dir" |
      tee -a $results
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const stat = (xs) => { xs = xs.filter((x) => x !== null); if (!xs.length) return "—"; const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return `${m.toFixed(3)} ± ${Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / xs.length).toFixed(3)}`; };
const by = {};
for (const r of rows) (by[r.name] ??= []).push(r);
console.log("| run | seeds | held-out avg@4 before | after (mean ± std) | gain (mean ± std) | RM outcome accuracy, first 5 steps | last 5 steps | seconds per run |");
console.log("|---|---|---|---|---|---|---|---|");
for (const [name, rs] of Object.entries(by))
  console.log(`| ${name} | ${rs.length} | ${stat(rs.map((r) => r.initialTestAccuracy))} | ${stat(rs.map((r) => r.testAccuracy))} | ${stat(rs.map((r) => r.testAccuracy - r.initialTestAccuracy))} | ${stat(rs.map((r) => r.rmAccuracyFirst5))} | ${stat(rs.map((r) => r.rmAccuracyLast5))} | ${stat(rs.map((r) => r.seconds)).split(" ")[0]} |`);
' $results
