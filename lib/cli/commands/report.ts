import { stat } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { planCharts, readRmEval, readRuns, renderReport } from '../../report/index.js';
import { checkNewFile, checkOutputApart, writeFileAtomic } from '../../util/fs.js';

interface ReportArgs {
  runs: string[];
  out: string;
  'rm-eval': string[];
  title?: string;
  overwrite: boolean;
}

/** `prefix-rl report`: one self-contained HTML page of charts and tables from run folders, several overlaid. */
export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <runs..>',
  describe: 'Write one self-contained HTML page (charts, config differences, final results, RM evaluation) from run folders',
  builder: (y) =>
    y
      .positional('runs', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'Run folders (sft, rm train, rl train --out); several share the charts, one colour each',
      })
      .option('out', { type: 'string', demandOption: true, describe: 'The HTML file to write' })
      .option('rm-eval', {
        type: 'string',
        array: true,
        default: [],
        describe: "rm eval JSON outputs to tabulate (a run folder's rm-eval.json is read anyway)",
      })
      .option('title', { type: 'string', describe: 'Page title (default: the run names)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out file' }),
  handler: async (args) => {
    if ((await stat(args.out).catch(() => undefined))?.isDirectory()) throw new Error(`--out ${args.out} is a folder; name the HTML file to write`);
    await checkNewFile('--out', args.out, args.overwrite);
    const runs = await readRuns(args.runs);
    const rmEvals = [];
    for (const file of args['rm-eval']) rmEvals.push(await readRmEval(file));
    for (const file of runs.flatMap((run) => run.files)) checkOutputApart('--out', args.out, { RUN: file });
    for (const source of rmEvals) checkOutputApart('--out', args.out, { '--rm-eval': source.file });
    const html = renderReport(runs, { title: args.title, rmEvals });
    await writeFileAtomic(args.out, html, { replace: args.overwrite });
    process.stdout.write(JSON.stringify({ out: args.out, runs: runs.length, charts: planCharts(runs).length }) + '\n');
  },
};
