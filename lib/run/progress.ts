// Progress of a long command on stderr: a bar with the step, the ETA and key metrics on a terminal (cli-progress),
// plain lines otherwise or with --quiet, so logs and pipes get text they can read.
import { SingleBar } from 'cli-progress';

export interface ProgressOptions {
  /** Plain lines even on a terminal. */
  quiet?: boolean;
  /** Plain mode: print a line every `every` updates (and at the last); default 1. */
  every?: number;
  stream?: NodeJS.WriteStream;
  /** Show nothing (the ranks of a data-parallel run other than rank 0). */
  silent?: boolean;
}

export interface Progress {
  /** `done` of the total are finished; `fields` are shown beside (numbers rounded for display). */
  update(done: number, fields?: Record<string, number | string | undefined>): void;
  /** A message that does not disturb the bar. */
  note(message: string): void;
  stop(): void;
}

export function createProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  if (options.silent) return { update: () => {}, note: () => {}, stop: () => {} };
  const stream = options.stream ?? process.stderr;
  const start = performance.now();
  const text = (fields: Record<string, number | string | undefined> = {}) =>
    Object.entries(fields)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key} ${typeof value === 'number' ? formatNumber(value) : value}`)
      .join(' ');
  if (stream.isTTY && !options.quiet) {
    const bar = new SingleBar({
      stream,
      format: `${label} [{bar}] {value}/{total} | {duration_formatted} elapsed, ETA {eta_formatted} | {fields}`,
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
    });
    bar.start(total, 0, { fields: '' });
    return {
      update: (done, fields) => bar.update(done, { fields: text(fields) }),
      note: (message) => {
        stream.write('\r\x1b[2K' + message + '\n');
        bar.render();
      },
      stop: () => bar.stop(),
    };
  }
  const every = Math.max(1, options.every ?? 1);
  return {
    update: (done, fields) => {
      if (done === 0 || (done % every !== 0 && done !== total)) return;
      const elapsed = (performance.now() - start) / 1000;
      const eta = done > 0 ? (elapsed / done) * (total - done) : NaN;
      stream.write(`${label} ${done}/${total} ${text(fields)} ${elapsed.toFixed(0)} s${Number.isFinite(eta) ? ` (ETA ${eta.toFixed(0)} s)` : ''}\n`);
    },
    note: (message) => stream.write(message + '\n'),
    stop: () => {},
  };
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e5) ? value.toExponential(2) : value.toFixed(4);
}

/**
 * A progress callback for work reported as (done, total) batches — sampling, scoring: a bar per pass, begun at its
 * first report and ended when done reaches total.
 */
export function batchProgress(label: string, options: ProgressOptions = {}): (done: number, total: number) => void {
  let bar: Progress | undefined;
  return (done, total) => {
    bar ??= createProgress(label, total, options);
    bar.update(done);
    if (done >= total) {
      bar.stop();
      bar = undefined;
    }
  };
}
