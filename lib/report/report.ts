// `prefix-rl report`: one self-contained HTML page from run folders (lib/run/layout.ts). Three parts:
//   reading   readRuns / readRmEval: run.json, metrics.jsonl, summary.json, rm-eval.json, each optional;
//   planning  planCharts: which charts have data, their series aligned on the steps (one colour per run);
//   rendering renderReport: the tables as HTML, the charts as JSON data drawn in the page by uPlot (page.ts).
// Everything a user named (folders, metric names, config values) is escaped where it enters the HTML, and the JSON
// data has every `<` written as \u003c, so nothing in it can close its <script>.
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { z } from 'zod';
import type { BonReport, ProcessBenchAverage, StepVerificationReport } from '../eval/reward-model.js';
import { parseMetrics } from '../run/folder.js';
import { METRICS_FILE, RM_EVAL_FILE, RUN_FILE, STAGES, SUMMARY_FILE, type MetricsRow, type Stage } from '../run/layout.js';
import { isTimingMetric, metricDoc, METRICS } from '../run/metrics.js';
import { PAGE_CSS, PAGE_SCRIPT, uplotAssets } from './page.js';

// ---------------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------------

/** run.json as read: every field optional, so a run written by another version still reports. */
const runInfoSchema = z.object({
  stage: z.enum(STAGES).optional().catch(undefined),
  config: z.record(z.string(), z.unknown()).optional().catch(undefined),
  inputs: z.record(z.string(), z.string()).optional().catch(undefined),
  createdAt: z.string().optional().catch(undefined),
  version: z.string().optional().catch(undefined),
});
export type ReportRunInfo = z.infer<typeof runInfoSchema>;

const modeSchema = z.object({ f1: z.number(), auc: z.number(), f1AtHalf: z.number().optional(), implicitPrmF1: z.number().optional() });
const modesSchema = z.record(z.string(), modeSchema);
const scoredSchema = z.object({ rewardModel: modesSchema, referenceLikelihood: modesSchema });

/** What `prefix-rl rm eval` prints (lib/cli/commands/rm.ts), as far as the report shows it. */
const rmEvalSchema = z.object({
  rm: z.string().optional(),
  reference: z.string().optional(),
  coef: z.number().optional(),
  processBench: z.record(z.string(), scoredSchema.extend({ items: z.number() })).optional(),
  processBenchAverage: scoredSchema.extend({ subsets: z.number() }).optional(),
  bestOfN: z
    .object({
      prompts: z.number(),
      byN: z.array(
        z.object({
          n: z.number(),
          // Optional: files from older versions lack some (rewardModelMin came later).
          rewardModel: z.number().optional(),
          rewardModelSum: z.number().optional(),
          rewardModelMin: z.number().optional(),
          referenceLikelihood: z.number().optional(),
          random: z.number().optional(),
          oracle: z.number().optional(),
        }),
      ),
    })
    .optional(),
});
export type RmEvalResult = z.infer<typeof rmEvalSchema>;

// Compile-time check: what `rm eval` prints stays readable by rmEvalSchema.
type PrintedRmEval = {
  rm: string;
  reference: string;
  coef: number;
  processBench: Record<string, StepVerificationReport>;
  processBenchAverage?: ProcessBenchAverage;
  bestOfN?: BonReport;
};
const _printedIsReadable = (printed: PrintedRmEval): RmEvalResult => printed;

/** An rm-eval.json and the name its tables give it. */
export interface RmEvalSource {
  label: string;
  file: string;
  result: RmEvalResult;
}

/** One run folder, as read. */
export interface ReportRun {
  /** The folder's name (with parent folders when two runs share a name). */
  name: string;
  /** The folder, absolute. */
  path: string;
  /** From run.json, else guessed from the metric names. */
  stage?: Stage;
  info?: ReportRunInfo;
  /** One row per step, by step (a step logged twice, e.g. after --resume, keeps its last values). */
  metrics: MetricsRow[];
  summary?: Record<string, unknown>;
  rmEval?: RmEvalSource;
  /** Every file read, absolute: what --out must not overwrite. */
  files: string[];
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function guessStage(metrics: readonly MetricsRow[]): Stage | undefined {
  const names = new Set(metrics.flatMap((row) => Object.keys(row)));
  if (names.has('train/loss')) return 'sft';
  if (names.has('reward_model/pair_acc')) return 'rm';
  if ([...names].some((name) => name.startsWith('actor/') || name.startsWith('critic/'))) return 'rl';
  return undefined;
}

/** Reads an rm-eval.json (the JSON `prefix-rl rm eval` prints). */
export async function readRmEval(file: string, label?: string): Promise<RmEvalSource> {
  const text = await readText(file);
  if (text === undefined) throw new Error(`--rm-eval ${file} does not exist`);
  const parsed = rmEvalSchema.safeParse(parseJson(file, text));
  if (!parsed.success) throw new Error(`${file} is not what \`prefix-rl rm eval\` prints: ${z.prettifyError(parsed.error)}`);
  const result = parsed.data;
  return { label: label ?? (result.rm ? basename(resolve(result.rm)) : basename(file).replace(/\.json$/, '')), file: resolve(file), result };
}

async function readRun(path: string): Promise<Omit<ReportRun, 'name'>> {
  const dir = resolve(path);
  const kind = await stat(dir).catch(() => undefined);
  if (!kind) throw new Error(`run folder ${path} does not exist`);
  if (!kind.isDirectory()) throw new Error(`${path} is not a run folder (not a folder)`);
  const files: string[] = [];
  const read = async (name: string) => {
    const text = await readText(join(dir, name));
    if (text !== undefined) files.push(join(dir, name));
    return text;
  };
  const [runText, metricsText, summaryText] = [await read(RUN_FILE), await read(METRICS_FILE), await read(SUMMARY_FILE)];
  if (metricsText === undefined && summaryText === undefined) {
    throw new Error(`${path} is not a run folder: it holds neither ${METRICS_FILE} nor ${SUMMARY_FILE}`);
  }
  const info = runText === undefined ? undefined : runInfoSchema.parse(parseJson(join(dir, RUN_FILE), runText));
  const metrics = metricsText === undefined ? [] : parseMetrics(join(dir, METRICS_FILE), metricsText);
  let summary: Record<string, unknown> | undefined;
  if (summaryText !== undefined) {
    const value = parseJson(join(dir, SUMMARY_FILE), summaryText);
    if (!isRecord(value)) throw new Error(`${join(dir, SUMMARY_FILE)}: not a JSON object`);
    summary = value;
  }
  const rmEvalFile = join(dir, RM_EVAL_FILE);
  const rmEval = (await readText(rmEvalFile)) === undefined ? undefined : await readRmEval(rmEvalFile);
  if (rmEval) files.push(rmEvalFile);
  return { path: dir, stage: info?.stage ?? guessStage(metrics), info, metrics, summary, rmEval, files };
}

/** Names for paths: the last folder name, or as many trailing folders as it takes to tell them apart. */
export function distinctNames(paths: readonly string[]): string[] {
  const parts = paths.map((path) => resolve(path).split(sep).filter(Boolean));
  const longest = Math.max(1, ...parts.map((p) => p.length));
  for (let depth = 1; depth <= longest; depth++) {
    const names = parts.map((p) => p.slice(-depth).join('/') || '/');
    if (new Set(names).size === names.length) return names;
  }
  return parts.map((p, i) => `${p.slice(-1)[0] ?? '/'} #${i + 1}`);
}

/**
 * Reads run folders (each needs metrics.jsonl or summary.json; run.json and rm-eval.json are optional). A path that
 * does not exist or is no run folder is an error naming it.
 */
export async function readRuns(paths: readonly string[]): Promise<ReportRun[]> {
  if (paths.length === 0) throw new Error('name at least one run folder');
  const runs = [];
  for (const path of paths) runs.push(await readRun(path));
  const names = distinctNames(runs.map((run) => run.path));
  return runs.map((run, i) => {
    const named = { name: names[i], ...run };
    if (named.rmEval) named.rmEval = { ...named.rmEval, label: names[i] };
    return named;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Planning the charts
// ---------------------------------------------------------------------------------------------------------------

/** Run colours: strongly saturated, so a drawn line is told from the grey grid. */
export const RUN_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#17becf', '#e377c2', '#8c564b', '#bcbd22', '#3949ab'];
const colorOf = (i: number) => RUN_COLORS[i % RUN_COLORS.length];
const DASHES: (number[] | undefined)[] = [undefined, [7, 4], [2, 3]];

/** Halfway between a colour and white: the stacked chart's fills. */
function lighten(hex: string, amount = 0.45): string {
  const channel = (k: number) => parseInt(hex.slice(1 + 2 * k, 3 + 2 * k), 16);
  const mixed = [0, 1, 2].map((k) => Math.round(channel(k) + (255 - channel(k)) * amount));
  return `#${mixed.map((c) => c.toString(16).padStart(2, '0')).join('')}`;
}

/** One chart: series aligned with `x`, null where a series has no value at that step. */
export interface ChartData {
  section: string;
  title: string;
  yLabel: string;
  kind: 'lines' | 'stacked';
  /** The metrics drawn, for the caption. */
  metrics: string[];
  x: number[];
  series: { label: string; color: string; fill?: string; dash?: number[]; points?: boolean }[];
  y: (number | null)[][];
}

interface ChartGroup {
  section: string;
  title: string;
  metrics: string[];
  /** Default: the metric's name (charts of one metric). */
  yLabel?: string;
}

/** The charts, in page order; each is drawn when some run has one of its metrics. */
const CHART_GROUPS: ChartGroup[] = [
  { section: 'Outcome', title: 'Outcome accuracy: sampled and held-out', metrics: ['critic/score/mean', 'val/accuracy'], yLabel: 'accuracy' },
  { section: 'Reward model', title: 'Reward-model loss', metrics: ['reward_model/loss'] },
  { section: 'Reward model', title: 'Reward-model accuracy', metrics: ['reward_model/acc', 'reward_model/pair_acc'], yLabel: 'accuracy' },
  { section: 'Policy', title: 'Response length', metrics: ['response_length/mean', 'response_length/max'], yLabel: 'tokens' },
  { section: 'Policy', title: 'Entropy of π_θ', metrics: ['actor/entropy'] },
  { section: 'Policy', title: 'PPO KL (π_old ‖ π_θ)', metrics: ['actor/ppo_kl'] },
  { section: 'Policy', title: 'Clip fractions', metrics: ['actor/pg_clipfrac', 'actor/topk_pg_clipfrac'], yLabel: 'clipped fraction' },
  { section: 'Policy', title: 'Policy losses', metrics: ['actor/pg_loss', 'actor/topk_pg_loss'], yLabel: 'loss' },
  { section: 'Policy', title: 'Candidate set size', metrics: ['candidates/size'] },
  { section: 'Policy', title: 'Candidate coverage', metrics: ['candidates/coverage'] },
  { section: 'SFT', title: 'SFT loss', metrics: ['train/loss'] },
  { section: 'SFT', title: 'SFT learning rate', metrics: ['train/lr'] },
  {
    section: 'Optimisation',
    title: 'Gradient norms (before clipping)',
    metrics: ['actor/grad_norm', 'reward_model/grad_norm', 'train/grad_norm'],
    yLabel: 'gradient norm',
  },
  { section: 'Speed', title: 'Throughput', metrics: ['perf/throughput'], yLabel: 'tokens / s' },
  { section: 'Speed', title: 'Step time', metrics: ['timing_s/step'], yLabel: 'seconds' },
];
const OTHER_SECTION = 'Other metrics';
/** The parts of a step's time: stacked per run (timing_s/step is their total, and has its own chart). */
const isTimingPart = (name: string) => name.startsWith('timing_s/') && name !== 'timing_s/step';

/** The metrics logged by some run: the catalogue's order first (lib/run/metrics.ts), then others by name. */
function loggedMetrics(runs: readonly ReportRun[]): string[] {
  const logged = new Set(runs.flatMap((run) => run.metrics.flatMap((row) => Object.keys(row))));
  logged.delete('step');
  const known = METRICS.map((m) => m.name).filter((name) => logged.has(name));
  return [...known, ...[...logged].filter((name) => !metricDoc(name)).sort()];
}

/** Metric names less the path they share: response_length/mean and response_length/max → mean, max. */
function shortNames(names: readonly string[]): string[] {
  const parts = names.map((name) => name.split('/'));
  let shared = 0;
  while (parts.every((p) => p.length > shared + 1 && p[shared] === parts[0][shared])) shared += 1;
  return parts.map((p) => p.slice(shared).join('/'));
}

/** Whether a series has values at fewer than half the chart's steps between its first and last (or has one value). */
function isSparse(values: ReadonlyMap<number, number>, x: readonly number[]): boolean {
  // A loop, not Math.min(...steps): a run of 125k steps would overflow the call stack with its arguments.
  let [first, last] = [Infinity, -Infinity];
  for (const step of values.keys()) [first, last] = [Math.min(first, step), Math.max(last, step)];
  return values.size < 2 || values.size < x.filter((step) => step >= first && step <= last).length / 2;
}

function linesChart(runs: readonly ReportRun[], group: ChartGroup): ChartData | undefined {
  const lines: { run: number; metric: number; values: Map<number, number> }[] = [];
  runs.forEach((run, r) => {
    group.metrics.forEach((metric, m) => {
      const values = new Map(run.metrics.filter((row) => row[metric] !== undefined).map((row) => [row.step, row[metric]]));
      if (values.size > 0) lines.push({ run: r, metric: m, values });
    });
  });
  if (lines.length === 0) return undefined;
  const x = [...new Set(lines.flatMap((line) => [...line.values.keys()]))].sort((a, b) => a - b);
  const drawn = [...new Set(lines.map((line) => line.metric))];
  const short = shortNames(drawn.map((m) => group.metrics[m]));
  return {
    section: group.section,
    title: group.title,
    yLabel: group.yLabel ?? group.metrics[0],
    kind: 'lines',
    metrics: drawn.map((m) => group.metrics[m]),
    x,
    series: lines.map((line) => {
      const metric = drawn.length > 1 ? short[drawn.indexOf(line.metric)] : group.metrics[line.metric];
      const parts = [runs.length > 1 ? runs[line.run].name : '', drawn.length > 1 || runs.length === 1 ? metric : ''];
      return {
        label: parts.filter(Boolean).join(' · '),
        color: colorOf(line.run),
        ...(DASHES[line.metric % DASHES.length] && { dash: DASHES[line.metric % DASHES.length] }),
        // A series measured on few of the steps it spans (or on one) shows its points: a line alone could hide them.
        ...(isSparse(line.values, x) && { points: true }),
      };
    }),
    y: lines.map((line) => x.map((step) => line.values.get(step) ?? null)),
  };
}

/** One run's time per step, stacked by part; `other` is what the parts leave of timing_s/step. */
function timingChart(run: ReportRun, parts: readonly string[]): ChartData | undefined {
  const own = parts.filter((part) => run.metrics.some((row) => row[part] !== undefined));
  const rows = run.metrics.filter((row) => own.some((part) => row[part] !== undefined));
  if (own.length === 0) return undefined;
  const y: (number | null)[][] = own.map((part) => rows.map((row) => row[part] ?? null));
  const labels = own.map((part) => part.slice('timing_s/'.length));
  if (rows.some((row) => row['timing_s/step'] !== undefined)) {
    y.push(
      rows.map((row) => (row['timing_s/step'] === undefined ? null : Math.max(0, row['timing_s/step'] - own.reduce((a, p) => a + (row[p] ?? 0), 0)))),
    );
    labels.push('other');
  }
  return {
    section: 'Speed',
    title: `Time per step by part: ${run.name}`,
    yLabel: 'seconds',
    kind: 'stacked',
    metrics: own,
    x: rows.map((row) => row.step),
    series: labels.map((label, k) => ({ label, color: colorOf(k), fill: lighten(colorOf(k)) })),
    y,
  };
}

/** The charts the report draws, in page order: only those some run has data for. */
export function planCharts(runs: readonly ReportRun[]): ChartData[] {
  const logged = loggedMetrics(runs);
  const charts: ChartData[] = [];
  for (const group of CHART_GROUPS) {
    const chart = linesChart(runs, group);
    if (chart) charts.push(chart);
  }
  const timingParts = logged.filter(isTimingPart);
  for (const run of runs) {
    const chart = timingChart(run, timingParts);
    if (chart) charts.push(chart);
  }
  const charted = new Set(CHART_GROUPS.flatMap((group) => group.metrics));
  for (const metric of logged.filter((name) => !charted.has(name) && !isTimingPart(name))) {
    const chart = linesChart(runs, { section: OTHER_SECTION, title: metric, metrics: [metric] });
    if (chart) charts.push(chart);
  }
  return charts;
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------------------

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text made safe for HTML content and attribute values. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

/** JSON for a <script type="application/json">: no `<` left, so no `</script>` or `<!--` can appear. */
export const scriptJson = (value: unknown): string => JSON.stringify(value).replace(/</g, '\\u003c');

/** A number for a table: integers whole, others to 4 significant digits (exponent when tiny or huge). */
export function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(3);
  return String(Number(x.toPrecision(4)));
}

/**
 * Nested objects as dotted keys (`actor.lr`); arrays, scalars and empty objects are leaves. `{a: {b: 1}, c: [1]}` →
 * `{'a.b': 1, c: [1]}`.
 */
export function flatten(value: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [key, inner] of Object.entries(value)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (isRecord(inner) && Object.keys(inner).length > 0) flatten(inner, name, out);
    else out[name] = inner;
  }
  return out;
}

/** A config value for a table cell: strings as they are, others as JSON. */
const showValue = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

interface Cell {
  html: string;
  className?: string;
  title?: string;
}
const text = (value: string, className?: string): Cell => ({ html: escapeHtml(value), className });
const num = (x: number | undefined, digits?: number): Cell =>
  x === undefined
    ? { html: '–', className: 'num absent' }
    : { html: escapeHtml(digits === undefined ? formatNumber(x) : x.toFixed(digits)), className: 'num', title: String(x) };
const absent = (): Cell => ({ html: '–', className: 'absent' });

function cellHtml(tag: 'td' | 'th', cell: Cell, extra = ''): string {
  const attrs = `${cell.className ? ` class="${cell.className}"` : ''}${cell.title ? ` title="${escapeHtml(cell.title)}"` : ''}${extra}`;
  return `<${tag}${attrs}>${cell.html}</${tag}>`;
}

/** A table: `head` rows of header cells (raw HTML), body rows whose first cell is a row header. */
function table(head: string[], rows: { cells: Cell[]; className?: string }[]): string {
  const body = rows
    .map(({ cells, className }) => {
      const [first, ...rest] = cells;
      return `<tr${className ? ` class="${className}"` : ''}>${cellHtml('th', first)}${rest.map((c) => cellHtml('td', c)).join('')}</tr>`;
    })
    .join('\n');
  return `<div class="table-wrap"><table>\n<thead>${head.map((row) => `<tr>${row}</tr>`).join('')}</thead>\n<tbody>\n${body}\n</tbody></table></div>`;
}

const swatch = (color: string) => `<span class="swatch" style="background:${color}"></span>`;
const runHeader = (run: ReportRun, i: number) => `<th>${swatch(colorOf(i))}${escapeHtml(run.name)}</th>`;

function runsSection(runs: readonly ReportRun[]): string {
  const rows = runs.map((run, i) => {
    const lastStep = run.metrics.at(-1)?.step;
    const algorithm = run.info?.config?.algorithm;
    const inputs = Object.entries(run.info?.inputs ?? {})
      .map(([role, path]) => `${role}: ${path}`)
      .join('\n');
    return {
      cells: [
        { html: `${swatch(colorOf(i))}${escapeHtml(run.name)}` },
        run.stage ? text(run.stage) : absent(),
        typeof algorithm === 'string' ? text(algorithm) : absent(),
        lastStep === undefined ? absent() : num(lastStep),
        text(run.summary ? 'finished' : 'no summary.json yet'),
        run.info?.createdAt ? text(run.info.createdAt) : absent(),
        run.info?.version ? text(run.info.version) : absent(),
        { html: escapeHtml(inputs).replace(/\n/g, '<br>') || '–', className: inputs ? 'wrap' : 'absent' },
        text(run.path, 'wrap'),
      ],
    };
  });
  const head = ['run', 'stage', 'algorithm', 'last step', 'state', 'created', 'version', 'inputs', 'folder'].map((h) => `<th>${h}</th>`).join('');
  return `<section id="runs"><h2>Runs</h2>\n${table([head], rows)}</section>`;
}

/** Rows of keys × runs; each value a Cell (undefined: absent). */
function keyTable(keys: readonly string[], runs: readonly { run: ReportRun; index: number }[], cell: (run: ReportRun, key: string) => Cell): string {
  const head = `<th>key</th>${runs.map(({ run, index }) => runHeader(run, index)).join('')}`;
  return table(
    [head],
    keys.map((key) => ({ cells: [text(key, 'key'), ...runs.map(({ run }) => cell(run, key))] })),
  );
}

function summarySection(runs: readonly ReportRun[]): string {
  const finished = runs.map((run, index) => ({ run, index })).filter(({ run }) => run.summary);
  if (finished.length === 0) return '';
  const flat = new Map(finished.map(({ run }) => [run, flatten(run.summary!)]));
  const isScalar = (v: unknown) => v === null || ['number', 'string', 'boolean'].includes(typeof v);
  const keys = [...new Set(finished.flatMap(({ run }) => Object.keys(flat.get(run)!).filter((key) => isScalar(flat.get(run)![key]))))];
  const cell = (run: ReportRun, key: string): Cell => {
    const value = flat.get(run)![key];
    if (value === undefined || !isScalar(value)) return absent();
    return typeof value === 'number' ? num(value) : text(showValue(value), 'wrap');
  };
  return `<section id="results"><h2>Final results</h2>\n<p class="note">From each run's ${SUMMARY_FILE}.</p>\n${keyTable(keys, finished, cell)}</section>`;
}

/** One stage's configs: with one run all of it (collapsed), with several the keys that differ, then all (collapsed). */
function configGroup(members: readonly { run: ReportRun; index: number }[]): string {
  const flat = new Map(members.map(({ run }) => [run, flatten(run.info!.config!)]));
  const keys = [...new Set(members.flatMap(({ run }) => Object.keys(flat.get(run)!)))];
  const cell = (run: ReportRun, key: string): Cell => {
    const value = flat.get(run)![key];
    return value === undefined ? absent() : text(showValue(value), 'wrap');
  };
  const all = (summary: string) => `<details><summary>${summary}</summary>\n${keyTable(keys, members, cell)}</details>`;
  if (members.length === 1) return all(`The resolved config of ${escapeHtml(members[0].run.name)} (${keys.length} keys)`);
  const differing = keys.filter((key) => new Set(members.map(({ run }) => JSON.stringify(flat.get(run)![key]) ?? '(absent)')).size > 1);
  const diff =
    differing.length > 0
      ? `<p class="note">Keys that differ: ${differing.length} of ${keys.length}.</p>\n${keyTable(differing, members, cell)}`
      : `<p class="note">The configs are the same (${keys.length} keys).</p>`;
  return `${diff}\n${all('Every key')}`;
}

/** The runs' configs (run.json), compared within each stage: an SFT config shares no keys with an RL one. */
function configSection(runs: readonly ReportRun[]): string {
  const configured = runs.map((run, index) => ({ run, index })).filter(({ run }) => run.info?.config);
  const missing = runs.filter((run) => !run.info?.config).map((run) => escapeHtml(run.name));
  const note = missing.length > 0 ? `<p class="note">No ${RUN_FILE} config in: ${missing.join(', ')}.</p>\n` : '';
  const stages = new Map<string, { run: ReportRun; index: number }[]>();
  for (const member of configured) {
    const stage = member.run.stage ?? 'unknown stage';
    stages.set(stage, [...(stages.get(stage) ?? []), member]);
  }
  const groups = [...stages].map(([stage, members]) =>
    stages.size > 1
      ? `<h3>${escapeHtml(stage)} (${members.length} run${members.length === 1 ? '' : 's'})</h3>\n${configGroup(members)}`
      : configGroup(members),
  );
  return `<section id="config"><h2>Configuration</h2>\n${note}${groups.join('\n')}</section>`;
}

const SCORES = [
  ['rewardModel', 'reward model'],
  ['referenceLikelihood', 'reference likelihood'],
] as const;

function processBenchTable(sources: readonly RmEvalSource[]): string {
  const withPb = sources.filter((s) => s.result.processBench && Object.keys(s.result.processBench).length > 0);
  if (withPb.length === 0) return '';
  const modes = [...new Set(withPb.flatMap((s) => Object.values(s.result.processBench!).flatMap((r) => Object.keys(r.rewardModel))))];
  type Subset = { items?: number; subsets?: number } & z.infer<typeof scoredSchema>;
  // Rows grouped by subset (a file, then the average), then by reward model, then by score.
  const subsets = [...new Set(withPb.flatMap((s) => Object.keys(s.result.processBench!)))];
  const groups: { name: string; title: string; of: (s: RmEvalSource) => Subset | undefined }[] = [
    ...subsets.map((file) => ({ name: basename(file), title: file, of: (s: RmEvalSource) => s.result.processBench![file] })),
    ...(withPb.some((s) => s.result.processBenchAverage)
      ? [{ name: 'average', title: 'the mean over the subsets', of: (s: RmEvalSource) => s.result.processBenchAverage }]
      : []),
  ];
  const rows: { cells: Cell[]; className?: string }[] = [];
  for (const group of groups) {
    let first = true;
    for (const source of withPb) {
      const subset = group.of(source);
      if (!subset) continue;
      for (const [key, label] of SCORES) {
        const size = subset.items !== undefined ? `${subset.items} items` : `${subset.subsets} subsets`;
        rows.push({
          className: first ? 'group-start' : undefined,
          cells: [
            first ? { ...text(group.name), title: group.title } : { html: '' },
            text(source.label),
            text(label),
            text(size),
            ...modes.flatMap((mode) => [num(subset[key][mode]?.f1, 3), num(subset[key][mode]?.auc, 3)]),
          ],
        });
        first = false;
      }
    }
  }
  const head1 = `<th rowspan="2">subset</th><th rowspan="2">reward model</th><th rowspan="2">score</th><th rowspan="2">size</th>${modes
    .map((mode) => `<th colspan="2">${escapeHtml(mode)}</th>`)
    .join('')}`;
  const head2 = modes.map(() => '<th>F1</th><th>AUC</th>').join('');
  return `<h3>ProcessBench: step F1 at the oracle threshold, and AUC, per step-score mode</h3>\n${table([head1, head2], rows)}`;
}

function bestOfNTable(sources: readonly RmEvalSource[]): string {
  const withBon = sources.filter((s) => s.result.bestOfN && s.result.bestOfN.byN.length > 0);
  if (withBon.length === 0) return '';
  const ns = [...new Set(withBon.flatMap((s) => s.result.bestOfN!.byN.map((row) => row.n)))].sort((a, b) => a - b);
  const columns = [
    ['rewardModel', 'RM mean'],
    ['rewardModelSum', 'RM sum'],
    ['rewardModelMin', 'RM min'],
    ['referenceLikelihood', 'reference likelihood'],
    ['random', 'random (avg@N)'],
    ['oracle', 'oracle (pass@N)'],
  ] as const;
  const rows: { cells: Cell[]; className?: string }[] = [];
  for (const n of ns) {
    let first = true;
    for (const source of withBon) {
      const row = source.result.bestOfN!.byN.find((r) => r.n === n);
      if (!row) continue;
      rows.push({
        className: first ? 'group-start' : undefined,
        cells: [
          first ? num(n) : { html: '' },
          text(`${source.label} (${source.result.bestOfN!.prompts} prompts)`),
          ...columns.map(([key]) => num(row[key], 3)),
        ],
      });
      first = false;
    }
  }
  const head = `<th>N</th><th>reward model</th>${columns.map(([, label]) => `<th>${label}</th>`).join('')}`;
  return `<h3>Best-of-N accuracy: the pick among each prompt's first N rollouts</h3>\n${table([head], rows)}`;
}

function rmEvalSection(sources: readonly RmEvalSource[]): string {
  if (sources.length === 0) return '';
  const about = sources
    .map((s) => {
      const parts = [
        s.result.rm && `rm ${s.result.rm}`,
        s.result.reference && `reference ${s.result.reference}`,
        s.result.coef !== undefined && `coef ${s.result.coef}`,
      ];
      return `<li><strong>${escapeHtml(s.label)}</strong>: ${escapeHtml([...parts.filter(Boolean), `from ${s.file}`].join(', '))}</li>`;
    })
    .join('\n');
  const tables = processBenchTable(sources) + bestOfNTable(sources);
  return `<section id="rm-eval"><h2>Reward-model evaluation</h2>\n<ul class="note">${about}</ul>\n${tables || '<p class="note">No ProcessBench or Best-of-N results.</p>'}</section>`;
}

function chartCaption(chart: ChartData): string {
  if (chart.kind === 'stacked') {
    return `<p class="desc">Seconds of each part of the step (<code>timing_s/*</code>), stacked; <code>other</code> is the rest of <code>timing_s/step</code>. Depends on the machine.</p>`;
  }
  const lines = chart.metrics.map((name) => {
    const doc = metricDoc(name);
    return `<code>${escapeHtml(name)}</code>${doc ? ` ${escapeHtml(doc.description)}` : ''}`;
  });
  const speed = chart.metrics.some(isTimingMetric) ? ' Depends on the machine.' : '';
  return `<p class="desc">${lines.join('<br>')}${speed}</p>`;
}

function chartsSection(charts: readonly ChartData[]): string {
  if (charts.length === 0) return `<section id="charts"><h2>Training curves</h2>\n<p class="note">No run logged metrics.</p></section>`;
  const sections = [...new Set(charts.map((chart) => chart.section))];
  const body = sections
    .map((section) => {
      const cards = charts
        .map((chart, i) => ({ chart, i }))
        .filter(({ chart }) => chart.section === section)
        .map(
          ({ chart, i }) =>
            `<figure class="card" data-chart="${i}"><figcaption>${escapeHtml(chart.title)}</figcaption><div class="chart"></div>${chartCaption(chart)}</figure>`,
        );
      return `<h3>${escapeHtml(section)}</h3>\n<div class="charts">\n${cards.join('\n')}\n</div>`;
    })
    .join('\n');
  return `<section id="charts"><h2>Training curves</h2>\n<p class="note">Hover a chart for the values at a step (every chart follows the cursor); click a legend entry to hide its line.</p>\n${body}</section>`;
}

export interface ReportOptions {
  /** The page title (default: the run names). */
  title?: string;
  /** rm-eval.json files given besides the run folders (a run folder's own is read by readRuns). */
  rmEvals?: readonly RmEvalSource[];
  /** When the report was made (default: now). */
  generatedAt?: Date;
}

/** The report page: one HTML string with everything inlined (uPlot, its stylesheet, the data). */
export function renderReport(runs: readonly ReportRun[], options: ReportOptions = {}): string {
  const charts = planCharts(runs);
  const rmEvals = [...runs.flatMap((run) => (run.rmEval ? [run.rmEval] : [])), ...(options.rmEvals ?? [])].filter(
    (source, i, all) => all.findIndex((other) => other.file === source.file) === i,
  );
  const title = options.title ?? `prefix-rl report: ${runs.map((run) => run.name).join(', ')}`;
  const { script: uplot, css: uplotCss } = uplotAssets();
  const sections = [runsSection(runs), summarySection(runs), rmEvalSection(rmEvals), chartsSection(charts), configSection(runs)].filter(Boolean);
  const nav = [
    ['runs', 'Runs'],
    ['results', 'Final results'],
    ['rm-eval', 'Reward-model evaluation'],
    ['charts', 'Training curves'],
    ['config', 'Configuration'],
  ]
    .filter(([id]) => sections.some((section) => section.startsWith(`<section id="${id}"`)))
    .map(([id, label]) => `<a href="#${id}">${label}</a>`)
    .join('');
  const generated = (options.generatedAt ?? new Date())
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  const data = { charts: charts.map(({ title, kind, yLabel, x, series, y }) => ({ title, kind, yLabel, x, series, y })) };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${uplotCss}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<main>
<header><h1>${escapeHtml(title)}</h1><p>${runs.length} run${runs.length === 1 ? '' : 's'} · ${charts.length} charts · generated ${generated} by prefix-rl report</p></header>
<nav>${nav}</nav>
${sections.join('\n')}
</main>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${uplot}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
