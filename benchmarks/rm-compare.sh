#!/usr/bin/env bash
# Stage A on the controlled task, side by side: offline reward models trained from the demo's SFT policy on its
# rollouts (one pair per mixed prompt), for each seed (the pair draw and batch order): IPVRM with m = 0, m = 5, the
# paper's early and late weightings, Implicit PRM and DPO-RM. Each is evaluated on the in-format and the shifted
# ProcessBench sets (step F1 at the oracle threshold, process-level sum_diff, and step AUC) and by Best-of-4/16 on
# 16 rollouts per held-out prompt, beside the SFT likelihood (and chance). Step scores use coef = the RM's own β (the
# paper's σ(β Σ log ratio)). Needs `npm run demo` first (demo-output/).
# Usage: bash benchmarks/rm-compare.sh [seeds...]   (default: 0 1 2). Prints one JSON line per run and a table.
set -euo pipefail
seeds=("$@")
[[ ${#seeds[@]} -eq 0 ]] && seeds=(0 1 2)
cli() { node bin/prefix-rl.js "$@"; }
src=demo-output
out=$src/rm-compare
mkdir -p $out
bon=$out/bon-rollouts.jsonl
[[ -f $bon ]] || cli rollout --model $src/sft/model --data $src/task/rl-test.jsonl --samples 16 --max-new-tokens 160 --batch-size 128 --seed 7 \
  --out $bon > $out/bon-rollouts.log
results=$out/results.jsonl
: > $results
variants=("ipvrm-m0:--method ipvrm --margin 0:10" "ipvrm-m5:--method ipvrm --margin 5:10" "ipvrm-early:--method ipvrm --weighting early:10"
  "ipvrm-late:--method ipvrm --weighting late:10" "implicit-prm:--method implicit-prm:0.05" "dpo-rm:--method dpo-rm:0.05")
for seed in "${seeds[@]}"; do
  for variant in "${variants[@]}"; do
    IFS=: read -r name flags coef <<< "$variant"
    dir=$out/$name-$seed
    # shellcheck disable=SC2086
    cli rm train $flags --rollouts $src/rollouts.jsonl --model $src/sft/model --seed "$seed" --out $dir/rm --overwrite --quiet > $dir.train.json 2> $dir.train.log
    cli rm eval --rm $dir/rm/model --reference $src/sft/model --coef "$coef" \
      --processbench $src/task/processbench-indist.jsonl $src/task/processbench.jsonl --bon-rollouts $bon --bon-n 4 16 \
      2> $dir.eval.log | node -e '
        const [name, seed] = process.argv.slice(1);
        const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const [indist, shifted] = Object.values(r.processBench);
        const pick = (s) => ({ f1: s.sum_diff.f1, auc: s.sum_diff.auc });
        const bon = Object.fromEntries(r.bestOfN.byN.map((b) => [b.n, b]));
        console.log(JSON.stringify({ name, seed: Number(seed), indist: pick(indist.rewardModel), shifted: pick(shifted.rewardModel),
          sftIndist: pick(indist.referenceLikelihood), sftShifted: pick(shifted.referenceLikelihood),
          bon4: bon[4].rewardModel, bon16: bon[16].rewardModel, bon4Min: bon[4].rewardModelMin, bon16Min: bon[16].rewardModelMin,
          sftBon4: bon[4].referenceLikelihood, sftBon16: bon[16].referenceLikelihood, random4: bon[4].random, random16: bon[16].random,
          oracle4: bon[4].oracle, oracle16: bon[16].oracle }));' "$name" "$seed" | tee -a $results
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const stat = (xs) => { const m = xs.reduce((a, b) => a + b, 0) / xs.length; const s = Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / xs.length); return `${m.toFixed(3)} ± ${s.toFixed(3)}`; };
const col = (rs, f) => stat(rs.map(f));
const by = {};
for (const r of rows) (by[r.name] ??= []).push(r);
const seeds = rows.filter((r) => r.name === rows[0].name).length;
console.log(`| reward model (${seeds} seeds, mean ± std) | in-format F1 | in-format AUC | shifted F1 | shifted AUC | BoN@4 mean | BoN@16 mean | BoN@4 min | BoN@16 min |`);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const [name, rs] of Object.entries(by))
  console.log(`| ${name} | ${[(r) => r.indist.f1, (r) => r.indist.auc, (r) => r.shifted.f1, (r) => r.shifted.auc, (r) => r.bon4, (r) => r.bon16, (r) => r.bon4Min, (r) => r.bon16Min].map((f) => col(rs, f)).join(" | ")} |`);
const all = rows;
console.log(`| SFT likelihood (log π_ref) | ${[(r) => r.sftIndist.f1, (r) => r.sftIndist.auc, (r) => r.sftShifted.f1, (r) => r.sftShifted.auc, (r) => r.sftBon4, (r) => r.sftBon16].map((f) => col(all, f)).join(" | ")} | | |`);
console.log(`| chance (random pick; AUC 0.5) | | 0.500 | | 0.500 | ${col(all, (r) => r.random4)} | ${col(all, (r) => r.random16)} | | |`);
console.log(`| oracle (pass@N) | | | | | ${col(all, (r) => r.oracle4)} | ${col(all, (r) => r.oracle16)} | | |`);
' $results
