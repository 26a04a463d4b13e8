// A pool of worker threads that run verifiers with a time budget per item. A worker that overruns
// its budget (a pathological symbolic evaluation) is terminated and replaced and its item reported
// as 'timeout'; a worker that crashes yields 'error'. verify() never rejects.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../util/worker.js';
import { parseCodeTests, testRunCount } from './code/tests.js';
import { DEFAULT_SANDBOX_LIMITS } from './code/sandbox.js';
import { errorResult, type VerifyRequest, type VerifyResult } from './types.js';
import type { VerifyOptions } from './verify.js';
import type { WorkerMessage, WorkerRequest } from './worker.js';

export interface VerifierPoolOptions extends VerifyOptions {
  /** Worker threads (default: available cores, at most 4). */
  workers?: number;
  /** Budget of one math/controlled item; code items get it on top of their runs' time limits (default 10 s). */
  timeoutMs?: number;
}

/** A worker's V8 heap cap: a runaway evaluation fails its item instead of the whole process. */
const WORKER_HEAP_MB = 512;
/** Time a fresh worker may take to load (transpiling sources under jest takes a second or two). */
const WORKER_STARTUP_MS = 60_000;
/** Per code run, beyond its time limit: sandbox set-up and teardown. */
const CODE_RUN_OVERHEAD_MS = 2_000;

interface Job {
  request: VerifyRequest;
  budgetMs: number;
  resolve: (result: VerifyResult) => void;
}

interface Slot {
  worker: Worker | null;
  ready: boolean;
  job: Job | null;
  jobId: number;
  timer?: NodeJS.Timeout;
}

/** Starts a worker (worker.ts beside this file; lib/util/worker.ts says how it loads from sources). */
function startWorker(options: VerifyOptions): Worker {
  return startModuleWorker(import.meta.url, './worker', {
    workerData: options,
    resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    stdout: true,
  });
}

export class VerifierPool {
  readonly #options: VerifyOptions;
  readonly #timeoutMs: number;
  readonly #slots: Slot[];
  readonly #queue: Job[] = [];
  #nextJobId = 0;
  #closed = false;

  constructor({ workers = Math.min(4, availableParallelism()), timeoutMs = 10_000, ...options }: VerifierPoolOptions = {}) {
    if (!(workers >= 1)) throw new RangeError(`VerifierPool: workers must be at least 1, got ${workers}`);
    if (!(timeoutMs > 0)) throw new RangeError(`VerifierPool: timeoutMs must be positive, got ${timeoutMs}`);
    this.#options = options;
    this.#timeoutMs = timeoutMs;
    this.#slots = Array.from({ length: workers }, () => ({ worker: null, ready: false, job: null, jobId: 0 }));
  }

  /** Judges one request in a worker. Resolves with 'timeout' or 'error' results rather than rejecting. */
  verify(request: VerifyRequest): Promise<VerifyResult> {
    if (this.#closed) return Promise.resolve(errorResult('the verifier pool is closed'));
    return new Promise((resolve) => {
      this.#queue.push({ request, budgetMs: this.#budgetMs(request), resolve });
      this.#dispatch();
    });
  }

  /** Judges many requests in parallel; results in request order. */
  verifyMany(requests: readonly VerifyRequest[]): Promise<VerifyResult[]> {
    return Promise.all(requests.map((request) => this.verify(request)));
  }

  /** Stops every worker; items still queued or running resolve as 'error'. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.resolve(errorResult('the verifier pool was closed'));
    await Promise.all(this.#slots.map((slot) => this.#finish(slot, errorResult('the verifier pool was closed'), true)));
  }

  #budgetMs(request: VerifyRequest): number {
    if (request.kind !== 'code') return this.#timeoutMs;
    let runs = 0;
    try {
      runs = testRunCount(parseCodeTests(request.tests));
    } catch {
      // Invalid tests: the worker answers 'error' at once.
    }
    const runMs = this.#options.code?.limits?.timeMs ?? DEFAULT_SANDBOX_LIMITS.timeMs;
    return this.#timeoutMs + runs * (runMs + CODE_RUN_OVERHEAD_MS);
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (this.#queue.length === 0) return;
      if (slot.job === null) this.#start(slot, this.#queue.shift()!);
    }
  }

  #start(slot: Slot, job: Job): void {
    const worker = slot.worker ?? this.#spawn(slot);
    slot.job = job;
    slot.jobId = ++this.#nextJobId;
    this.#arm(slot);
    worker.ref();
    worker.postMessage({ id: slot.jobId, request: job.request } satisfies WorkerRequest);
  }

  /** (Re)starts the job's clock; a worker still loading gets its start-up time on top. */
  #arm(slot: Slot): void {
    clearTimeout(slot.timer);
    const budgetMs = slot.job!.budgetMs;
    const timeout: VerifyResult = { status: 'timeout', extracted: null, detail: `verification exceeded its ${budgetMs} ms budget` };
    slot.timer = setTimeout(() => void this.#finish(slot, timeout, true), budgetMs + (slot.ready ? 0 : WORKER_STARTUP_MS));
  }

  #spawn(slot: Slot): Worker {
    const worker = startWorker(this.#options);
    worker.stdout.resume(); // A verifier's console output must not reach the caller's stdout (the CLI prints JSON there).
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (message: WorkerMessage) => {
      if (slot.worker !== worker) return;
      if ('ready' in message) {
        slot.ready = true;
        if (slot.job !== null) this.#arm(slot);
      } else if (message.id === slot.jobId) void this.#finish(slot, message.result, false);
    });
    worker.on('error', (error) => {
      if (slot.worker === worker) void this.#finish(slot, errorResult(`verifier worker failed: ${error.message}`), true);
    });
    worker.on('exit', (code) => {
      if (slot.worker === worker) void this.#finish(slot, errorResult(`verifier worker exited with code ${code}`), true);
    });
    return worker;
  }

  /** Resolves the slot's job (if any); a discarded worker is terminated and replaced on next use. */
  async #finish(slot: Slot, result: VerifyResult, discardWorker: boolean): Promise<void> {
    clearTimeout(slot.timer);
    const job = slot.job;
    slot.job = null;
    const worker = slot.worker;
    if (discardWorker) slot.worker = null;
    job?.resolve(result);
    if (!this.#closed) this.#dispatch();
    if (worker === null) return;
    if (discardWorker) await worker.terminate();
    else if (slot.job === null) worker.unref(); // An idle pool does not keep the process alive.
  }
}
