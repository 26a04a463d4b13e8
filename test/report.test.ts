// `prefix-rl report`: from synthetic run folders (a GRPO-like and a DistRL-like RL run, an SFT run with a hostile
// folder name, an rm-eval.json inside a run and one given by --rm-eval), one HTML file that is self-contained,
// escapes what users named, refuses to clobber files, and — opened in headless Chromium — draws every chart it plans.
import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';
import { main } from '../lib/cli/main.js';
import { parseMetrics } from '../lib/report/index.js';
import { captureStdout } from './helpers/stdout.js';

const HOSTILE = '<img src=x onerror=alert(1)>';
const HOSTILE_METRIC = 'custom/</script><b>x';
const HOSTILE_CONFIG = '</script><script>alert(2)</script>';
const CHROMIUM = process.env.PREFIX_RL_CHROMIUM ?? '/usr/bin/chromium';

let dir: string;
let runs: { grpo: string; distrl: string; sft: string };
let extraRmEval: string;
let out: string;
let html: string;
let printed: { out: string; runs: number; charts: number };

const jsonl = (rows: object[]) => rows.map((row) => JSON.stringify(row)).join('\n') + '\n';

/** An RL run's rows: step 0 holds val/accuracy only; evaluation every 3 steps; DistRL adds the Dist-PPO metrics. */
function rlRows(distrl: boolean): object[] {
  const rows: object[] = [{ step: 0, 'val/accuracy': 0.4 }];
  for (let step = 1; step <= 6; step++) {
    const gen = 1 + 0.1 * step;
    rows.push({
      step,
      'critic/score/mean': 0.3 + 0.05 * step + (distrl ? 0.02 : 0),
      'actor/pg_loss': 0.02 * Math.sin(step),
      'actor/pg_clipfrac': 0.01 * step,
      'actor/ppo_kl': 0.001 * step,
      'actor/entropy': 0.5 - 0.03 * step,
      'actor/grad_norm': 0.4 + 0.02 * step,
      'response_length/mean': 80 + step,
      'response_length/max': 150 + 2 * step,
      'candidates/size': distrl ? 1.3 + 0.01 * step : 1,
      'perf/throughput': 5000 + 100 * step,
      'timing_s/gen': gen,
      'timing_s/verify': 0.2,
      'timing_s/update_actor': 0.5,
      'timing_s/step': gen + 0.2 + 0.5 + (distrl ? 0.6 : 0.1),
      ...(step % 3 === 0 && { 'val/accuracy': 0.4 + 0.04 * step }),
      ...(distrl && {
        'actor/topk_pg_loss': 0.01 + 0.001 * step,
        'actor/topk_pg_clipfrac': 0.002 * step,
        'candidates/coverage': 0.9 + 0.01 * step,
        'reward_model/loss': 4.8 - 0.1 * step,
        'reward_model/acc': 0.6 + 0.02 * step,
        'timing_s/rm_update': 0.5,
        [HOSTILE_METRIC]: step,
      }),
    });
  }
  return rows;
}

function rlConfig(algorithm: string, extra: object) {
  return {
    algorithm,
    steps: 6,
    seed: 0,
    rollout: { promptsPerStep: 4, samples: 4, accuracyBounds: [0.01, 0.99] },
    actor: { lr: 1e-5, policyLosses: { 'tok-ppo': 1 }, clipRatioHigh: 0.28 },
    rewardModel: { kind: 'none', beta: 10 },
    ...extra,
  };
}

const modes = (f1: number, auc: number) =>
  Object.fromEntries(
    ['sum', 'sum_diff', 'mean', 'mean_diff'].map((mode, i) => [
      mode,
      { f1: f1 + 0.01 * i, threshold: 0.5, implicitPrmF1: f1, implicitPrmThreshold: 0.4, f1AtHalf: f1 / 2, auc: auc + 0.01 * i },
    ]),
  );

/** What `prefix-rl rm eval` prints. */
function rmEvalOutput(rm: string, f1: number) {
  const subset = (items: number) => ({ items, rewardModel: modes(f1, 0.7), referenceLikelihood: modes(0.3, 0.9) });
  return {
    rm,
    reference: 'runs/sft',
    coef: 0.001,
    processBench: { 'data/processbench-gsm8k.jsonl': subset(100), 'data/processbench-math.jsonl': subset(80) },
    processBenchAverage: { subsets: 2, rewardModel: modes(f1, 0.7), referenceLikelihood: modes(0.3, 0.9) },
    bestOfN: {
      prompts: 50,
      byN: [4, 16].map((n) => ({
        n,
        rewardModel: 0.6 + n / 100,
        rewardModelSum: 0.58,
        rewardModelMin: 0.57,
        referenceLikelihood: 0.55,
        random: 0.5,
        oracle: 0.8,
      })),
    },
  };
}

async function writeRun(path: string, files: { run?: object; metrics?: object[]; summary?: object; rmEval?: object }): Promise<string> {
  await mkdir(path, { recursive: true });
  if (files.run) await writeFile(join(path, 'run.json'), JSON.stringify(files.run, null, 2));
  if (files.metrics) await writeFile(join(path, 'metrics.jsonl'), jsonl(files.metrics));
  if (files.summary) await writeFile(join(path, 'summary.json'), JSON.stringify(files.summary));
  if (files.rmEval) await writeFile(join(path, 'rm-eval.json'), JSON.stringify(files.rmEval) + '\n');
  return path;
}

async function report(args: string[]): Promise<{ out: string; runs: number; charts: number }> {
  const stdout = captureStdout();
  try {
    await main(['report', ...args]);
  } finally {
    jest.restoreAllMocks();
  }
  return JSON.parse(stdout.join(''));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prefix-rl-report-'));
  const info = (config: object) => ({
    stage: 'rl',
    config,
    inputs: { data: '/data/rl.jsonl' },
    createdAt: '2025-01-01T00:00:00.000Z',
    version: '0.1.0',
  });
  runs = {
    grpo: await writeRun(join(dir, 'grpo'), {
      run: info(rlConfig('grpo', {})),
      metrics: rlRows(false),
      summary: { steps: 6, finalAccuracy: 0.6, initialTestAccuracy: 0.4, testAccuracy: 0.64, seconds: 12.5 },
    }),
    distrl: await writeRun(join(dir, 'distrl'), {
      run: info(
        rlConfig('distrl-ipvrm', {
          actor: { lr: 2e-5, policyLosses: { 'tok-ppo': 1, 'dist-ppo': 0.1 }, clipRatioHigh: 0.28 },
          rewardModel: { kind: 'ipvrm', beta: 10 },
          note: HOSTILE_CONFIG,
        }),
      ),
      metrics: rlRows(true),
      summary: { steps: 6, finalAccuracy: 0.62, initialTestAccuracy: 0.4, testAccuracy: 0.66, seconds: 15.25, rmAccuracyLast5: 0.7 },
      rmEval: rmEvalOutput('runs/distrl/reward-model', 0.55),
    }),
    // No run.json: the stage comes from the metric names.
    sft: await writeRun(join(dir, HOSTILE), {
      metrics: Array.from({ length: 10 }, (_, i) => ({
        step: i + 1,
        'train/loss': 2 * Math.exp(-i / 4) + 0.3,
        'train/grad_norm': 1 - 0.05 * i,
        'train/lr': 1e-4 * (1 - i / 10),
        'perf/throughput': 9000 + 10 * i,
        'timing_s/step': 0.4,
      })),
      summary: { steps: 10, finalLoss: 0.35 },
    }),
  };
  extraRmEval = join(dir, 'rm-dpo-eval.json');
  await writeFile(extraRmEval, JSON.stringify(rmEvalOutput('runs/rm-dpo', 0.45)) + '\n');
  out = join(dir, 'report.html');
  printed = await report([runs.grpo, runs.distrl, runs.sft, '--rm-eval', extraRmEval, '--out', out, '--title', 'GRPO vs DistRL']);
  html = await readFile(out, 'utf8');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The charts the synthetic runs have data for, in page order. */
const EXPECTED_CHARTS = [
  'Outcome accuracy: sampled and held-out',
  'Reward-model loss',
  'Reward-model accuracy',
  'Response length',
  'Entropy of π_θ',
  'PPO KL (π_old ‖ π_θ)',
  'Clip fractions',
  'Policy losses',
  'Candidate set size',
  'Candidate coverage',
  'SFT loss',
  'SFT learning rate',
  'Gradient norms (before clipping)',
  'Throughput',
  'Step time',
  'Time per step by part: grpo',
  'Time per step by part: distrl',
  HOSTILE_METRIC, // other metrics: one chart each
];

const section = (id: string) => {
  const start = html.indexOf(`<section id="${id}">`);
  expect(start).toBeGreaterThanOrEqual(0);
  return html.slice(start, html.indexOf('</section>', start));
};

describe('prefix-rl report', () => {
  test('prints what it wrote: the file, the runs, the charts', () => {
    expect(printed).toEqual({ out, runs: 3, charts: EXPECTED_CHARTS.length });
    const captions = [...html.matchAll(/<figure class="card" data-chart="(\d+)"><figcaption>(.*?)<\/figcaption>/g)];
    expect(captions.map((m) => Number(m[1]))).toEqual(EXPECTED_CHARTS.map((_, i) => i));
    const unescape = (s: string) =>
      s
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&amp;/g, '&');
    expect(captions.map((m) => unescape(m[2]))).toEqual(EXPECTED_CHARTS);
  });

  test('is self-contained: nothing fetched, uPlot and its stylesheet inlined', async () => {
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/<script[^>]*\bsrc\s*=/i);
    expect(html).not.toMatch(/@import|url\(/i);
    const uplot = await readFile(join(process.cwd(), 'node_modules/uplot/dist/uPlot.iife.min.js'), 'utf8');
    const uplotCss = await readFile(join(process.cwd(), 'node_modules/uplot/dist/uPlot.min.css'), 'utf8');
    expect(html).toContain(uplot);
    expect(html).toContain(uplotCss);
    expect(html).toContain('<script type="application/json" id="report-data">');
  });

  test('escapes run names, metric names and config values', () => {
    expect(html).not.toContain(HOSTILE);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toContain('<b>x');
    expect(html).not.toContain('<script>alert(2)');
    expect(html).toContain(escapeForTest(HOSTILE_CONFIG));
    // Every </script> closes one of the three scripts: the JSON data has no `<` left.
    expect(html.match(/<\/script/gi)).toHaveLength(3);
    expect(html.match(/<script/gi)).toHaveLength(3);
    const json = html.slice(html.indexOf('id="report-data">') + 'id="report-data">'.length, html.indexOf('</script>'));
    expect(json).not.toContain('<');
    expect(json).toContain('\\u003cimg src=x onerror=alert(1)>');
  });

  test('tables: the runs, the final results, the config keys that differ, the RM evaluation', () => {
    const runsTable = section('runs');
    expect(runsTable).toContain('distrl-ipvrm');
    expect(runsTable).toMatch(/&lt;img src=x onerror=alert\(1\)&gt;<\/th><td>sft</); // the stage guessed from train/loss

    const results = section('results');
    for (const key of ['finalAccuracy', 'testAccuracy', 'rmAccuracyLast5', 'finalLoss']) expect(results).toContain(`>${key}<`);
    expect(results).toContain('>15.25<');

    const config = section('config');
    const diff = config.slice(0, config.indexOf('<details>'));
    for (const key of ['algorithm', 'actor.lr', 'actor.policyLosses.dist-ppo', 'rewardModel.kind', 'note']) expect(diff).toContain(`>${key}<`);
    for (const key of ['steps', 'rollout.samples', 'rollout.accuracyBounds', 'actor.clipRatioHigh', 'rewardModel.beta'])
      expect(diff).not.toContain(`>${key}<`);
    expect(diff).toContain('>0.00002<');
    expect(diff).toMatch(/No run.json config in: &lt;img/);
    expect(config).toContain('>rollout.samples<'); // in the collapsed full listing

    const rmEval = section('rm-eval');
    for (const text of [
      'ProcessBench',
      'processbench-gsm8k.jsonl',
      'processbench-math.jsonl',
      '>average<',
      'Best-of-N',
      '>rm-dpo (50 prompts)<',
      '>distrl (50 prompts)<',
    ]) {
      expect(rmEval).toContain(text);
    }
    expect(rmEval).toContain('>0.550<'); // distrl's reward-model F1 (sum)
    expect(rmEval).toContain('>0.450<'); // rm-dpo's
    expect(rmEval).toContain('>0.760<'); // Best-of-16, RM mean
  });

  test('refuses to overwrite a file without --overwrite, or to write over an input', async () => {
    await expect(report([runs.grpo, '--out', out])).rejects.toThrow(/--out .*report\.html already exists; pass --overwrite/);
    await expect(report([runs.grpo, '--out', out, '--overwrite'])).resolves.toMatchObject({ runs: 1 });
    const rmEvalFile = join(runs.distrl, 'rm-eval.json');
    const before = await readFile(rmEvalFile, 'utf8');
    await expect(report([runs.distrl, '--out', rmEvalFile, '--overwrite'])).rejects.toThrow(/overlaps RUN .*rm-eval\.json/);
    await expect(report([runs.grpo, '--rm-eval', extraRmEval, '--out', extraRmEval, '--overwrite'])).rejects.toThrow(/overlaps --rm-eval/);
    expect(await readFile(rmEvalFile, 'utf8')).toBe(before);
    await expect(report([runs.grpo, '--out', runs.grpo, '--overwrite'])).rejects.toThrow(/is a folder/);
    // Put the full page back for the browser test.
    await report([runs.grpo, runs.distrl, runs.sft, '--rm-eval', extraRmEval, '--out', out, '--overwrite', '--title', 'GRPO vs DistRL']);
  });

  test('names a run path that does not exist, or a folder that is no run', async () => {
    const missing = join(dir, 'no-such-run');
    await expect(report([runs.grpo, missing, '--out', join(dir, 'x.html')])).rejects.toThrow(`run folder ${missing} does not exist`);
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await expect(report([empty, '--out', join(dir, 'x.html')])).rejects.toThrow(
      `${empty} is not a run folder: it holds neither metrics.jsonl nor summary.json`,
    );
    expect(existsSync(join(dir, 'x.html'))).toBe(false);
  });

  test('metrics.jsonl: a step logged twice keeps its last values; a torn last line is dropped, a bad line before it is an error', () => {
    const text = '{"step":1,"a":1,"b":2}\n{"step":2,"a":3}\n{"step":1,"a":5}\n{"step":3,"a":';
    expect(parseMetrics('m.jsonl', text)).toEqual([
      { step: 1, a: 5, b: 2 },
      { step: 2, a: 3 },
    ]);
    expect(() => parseMetrics('m.jsonl', '{"step":1}\n{oops\n{"step":2}\n')).toThrow('m.jsonl:2: not JSON');
  });
});

function escapeForTest(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Headless Chromium; a missing one fails the test (never skips it), saying how to get one. */
async function launchChromium(): Promise<Browser> {
  const hint = "install Debian's chromium (apt-get install chromium) or set PREFIX_RL_CHROMIUM to a Chrome or Chromium binary";
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: ${hint}`);
  try {
    return await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new', '--disable-gpu'] });
  } catch (err) {
    throw new Error(`Chromium at ${CHROMIUM} did not start (${(err as Error).message}): ${hint}`);
  }
}

/** Per chart: the pixels of its canvas in a saturated colour (the series; the grid and axes are grey). */
const COLOURED_PIXELS = `Array.from(document.querySelectorAll('[data-chart]')).map((card) => {
  const canvas = card.querySelector('canvas');
  if (!canvas || canvas.width === 0 || canvas.height === 0) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
    if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured += 1;
  }
  return coloured;
})`;

describe('the report in headless Chromium', () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  test('draws every chart, with no errors, requests or dialogs', async () => {
    browser = await launchChromium();
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${(error as Error).message}`));
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('request', (request) => requests.push(request.url()));
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(pathToFileURL(out).href, { waitUntil: 'load' });
    await page.waitForFunction('window.__REPORT_STATUS__ !== undefined', { timeout: 15_000 });
    const status = (await page.evaluate('window.__REPORT_STATUS__')) as { charts: number; drawn: number; errors: string[] };
    expect(status).toEqual({ charts: EXPECTED_CHARTS.length, drawn: EXPECTED_CHARTS.length, errors: [] });

    const coloured = (await page.evaluate(COLOURED_PIXELS)) as number[];
    expect(coloured).toHaveLength(EXPECTED_CHARTS.length);
    coloured.forEach((count, i) => expect([EXPECTED_CHARTS[i], count > 50]).toEqual([EXPECTED_CHARTS[i], true]));

    // The hostile run name is text (in the tables and the chart legends), never an element.
    expect(await page.evaluate(`document.querySelectorAll('img, b').length`)).toBe(0);
    expect(await page.evaluate(`document.body.innerText.includes(${JSON.stringify(HOSTILE)})`)).toBe(true);
    expect(
      await page.evaluate(`Array.from(document.querySelectorAll('.u-legend .u-label')).some((el) => el.textContent === ${JSON.stringify(HOSTILE)})`),
    ).toBe(true);

    if (process.env.PREFIX_RL_REPORT_SCREENSHOT) await page.screenshot({ path: process.env.PREFIX_RL_REPORT_SCREENSHOT, fullPage: true });
    expect(problems).toEqual([]);
    expect(requests.filter((url) => !url.startsWith('file:') && !url.startsWith('data:'))).toEqual([]);
  });
});
