// Scoring with a trained implicit reward model from another TypeScript tool: the steps of one solution, and a
// reranking of candidate answers. Run it (after `npm run demo`, which trains demo-output/rm-ipvrm from the SFT model):
//   npx tsc -p tsconfig.json && node dist/docs/examples/score-steps.js [RM_DIR] [REFERENCE_DIR]
import { loadModel, loadTokenizer, rerank, scoreSteps } from '../../lib/index.js';

const [rmDir = 'demo-output/rm-ipvrm/model', referenceDir = 'demo-output/sft/model'] = process.argv.slice(2);
const models = { rewardModel: await loadModel(rmDir), reference: await loadModel(referenceDir), tokenizer: await loadTokenizer(referenceDir) };
try {
  const problem = 'Compute 2 + 3 * 4 step by step.';
  const report = await scoreSteps(models, problem, ['3 * 4 = 12', '2 + 12 = 14', 'The answer is 14.'], { mode: 'sum', threshold: 0.5 });
  console.log('step scores (prefix-based):', report.scores.sum.map((s) => s.toFixed(3)).join(' '));
  console.log('prefix values v̄:', report.prefixValues.map((v) => v.toFixed(3)).join(' '));
  console.log('first wrong step:', report.firstError === -1 ? 'none' : report.firstError + 1);
  const ranked = await rerank(models, problem, ['3 * 4 = 12\n\n2 + 12 = 14', '2 + 3 = 5\n\n5 * 4 = 20']);
  console.log('reranked (best first):', ranked.map(({ index, score }) => `#${index} ${score.toFixed(4)}`).join(', '));
} finally {
  models.rewardModel.dispose();
  models.reference.dispose();
}
