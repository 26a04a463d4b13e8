// Math verification throughput (items/s) on 10k responses — in-process and on the verifier pool (1, 2 and the
// default number of workers) — side by side in one run. The responses cycle through answer kinds of the test
// tables (integers, fractions, decimals, expressions with variables, relations, intervals, sets, equations, prose).
// Run: npm run bench:verify [-- --items=N]
import { cpus } from 'node:os';
import { VerifierPool } from '../lib/verify/pool.js';
import { verifyMath } from '../lib/verify/index.js';

const items = Number(process.argv.find((a) => a.startsWith('--items='))?.slice(8) ?? 10_000);
const KINDS: [string, string][] = [
  ['42', '42'],
  ['\\frac{7}{2}', '3.5'],
  ['0.3333', '\\frac{1}{3}'],
  ['(x+1)^2', 'x^2 + 2x + 1'],
  ['\\frac{x^2-1}{x-1}', 'x + 1'],
  ['x \\geq 5', '[5, \\infty)'],
  ['\\{1, 2, 3\\}', '\\{3, 2, 1\\}'],
  ['2y = 4x + 2', 'y = 2x + 1'],
  ['1 + 2i', '2i + 1'],
  ['5 \\text{ cm}', '5'],
  ['v_0 r_0', 'r_0 v_0'],
  ['\\text{no solution}', '3'],
];
const table = Array.from({ length: items }, (_, i) => {
  const [answer, truth] = KINDS[i % KINDS.length];
  return { response: `Step ${i}: some reasoning.\nSo the final answer is $\\boxed{${answer}}$.`, truth };
});

function inProcess(): number {
  const start = performance.now();
  let passed = 0;
  for (const { response, truth } of table) if (verifyMath(response, truth).status === 'pass') passed++;
  if (passed === 0) throw new Error('nothing passed');
  return items / ((performance.now() - start) / 1000);
}

async function pooled(workers: number): Promise<number> {
  const pool = new VerifierPool({ workers });
  try {
    await pool.verify({ kind: 'math', response: '\\boxed{1}', groundTruth: '1' }); // workers started and warm
    const start = performance.now();
    await Promise.all(table.map(({ response, truth }) => pool.verify({ kind: 'math', response, groundTruth: truth })));
    return items / ((performance.now() - start) / 1000);
  } finally {
    await pool.close();
  }
}

const rows: [string, number][] = [['in-process (the calling thread)', inProcess()]];
for (const workers of [...new Set([1, 2, Math.min(4, cpus().length)])])
  rows.push([`pool, ${workers} worker${workers > 1 ? 's' : ''}`, await pooled(workers)]);
console.log(`math verification, ${items} responses (${KINDS.length} answer kinds), ${cpus()[0].model}, ${cpus().length} CPUs`);
console.log('| where | items/s |\n|---|---|');
for (const [where, rate] of rows) console.log(`| ${where} | ${rate.toFixed(0)} |`);
