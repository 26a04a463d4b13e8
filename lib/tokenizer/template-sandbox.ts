// Chat templates rendered under a time and size bound. Templates are code from a checkpoint folder; rendered on the
// main thread, one that loops for minutes or builds gigabytes of text would hang or abort the whole process. Here a
// worker thread with its own capped heap renders them, and the caller waits for it synchronously (Atomics.wait on a
// shared flag, then receiveMessageOnPort), so applyChatTemplate stays a plain function. A render that overruns is
// an error, and the worker is replaced.
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { startModuleWorker } from '../util/worker.js';
import type { RenderReply, RenderRequest } from './template-worker.js';

export interface TemplateLimits {
  /** Wall time of one render (default 10 s). */
  timeoutMs: number;
  /** The worker's V8 heap (default 256 MiB): a render that needs more fails. */
  heapMb: number;
  /** Characters of one rendered chat (default 16 Mi). */
  maxOutputChars: number;
}

export const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = { timeoutMs: 10_000, heapMb: 256, maxOutputChars: 16 * 2 ** 20 };
/** Time a fresh worker may take to load (transpiling sources under jest takes a second or two). */
const STARTUP_MS = 60_000;
/** The shared flag's states: the worker is loading; a request is pending; a reply is queued (template-worker.ts). */
const [STARTING, IDLE] = [-1, 0];

export class TemplateSandbox {
  private worker?: Worker;
  private port?: MessagePort;
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));

  constructor(readonly limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS) {}

  /** `source` rendered with `context` (structured-cloneable), or an Error saying why not. */
  render(source: string, context: Record<string, unknown>): string {
    const port = this.start();
    Atomics.store(this.signal, 0, IDLE);
    port.postMessage({ source, context } satisfies RenderRequest);
    const waited = Atomics.wait(this.signal, 0, IDLE, this.limits.timeoutMs);
    const reply = receiveMessageOnPort(port)?.message as RenderReply | undefined;
    if (waited === 'timed-out' || !reply) {
      this.stop();
      const { timeoutMs, heapMb } = this.limits;
      throw new Error(`rendering did not finish within ${timeoutMs / 1000} s or needed more than ${heapMb} MiB (the worker was stopped)`);
    }
    if ('error' in reply) throw new Error(reply.error);
    return reply.text;
  }

  /** Stops the worker (the next render starts another). */
  stop(): void {
    void this.worker?.terminate();
    this.port?.close();
    this.worker = this.port = undefined;
  }

  /** The worker's port, starting it (and waiting until it has loaded, outside any render's budget) if need be. */
  private start(): MessagePort {
    if (this.port) return this.port;
    const { port1, port2 } = new MessageChannel();
    Atomics.store(this.signal, 0, STARTING);
    const worker = startModuleWorker(import.meta.url, './template-worker', {
      workerData: { port: port2, signal: this.signal, maxOutputChars: this.limits.maxOutputChars },
      transferList: [port2],
      resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMb },
    });
    worker.unref(); // an idle sandbox never keeps the process alive
    port1.unref();
    worker.on('error', () => this.worker === worker && this.stop()); // out of heap: the next render starts afresh
    [this.worker, this.port] = [worker, port1];
    if (Atomics.wait(this.signal, 0, STARTING, STARTUP_MS) === 'timed-out') {
      this.stop();
      throw new Error(`the template worker did not start within ${STARTUP_MS / 1000} s`);
    }
    return port1;
  }
}
