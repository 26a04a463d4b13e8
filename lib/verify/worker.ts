// Worker-thread side of VerifierPool: warms up, announces itself ready, then answers one request at a time.
import { parentPort, workerData } from 'node:worker_threads';
import type { VerifyRequest, VerifyResult } from './types.js';
import { verify, type VerifyOptions } from './verify.js';

export interface WorkerRequest {
  id: number;
  request: VerifyRequest;
}

export type WorkerMessage = { ready: true } | { id: number; result: VerifyResult };

const port = parentPort!;
const options = workerData as VerifyOptions;
// The Compute Engine loads parts of itself on first use; pay that before the first item's clock starts.
await verify({ kind: 'math', response: '\\boxed{\\sqrt{2}\\sin(x)}', groundTruth: '\\sin x\\cdot\\sqrt2' });
port.on('message', async ({ id, request }: WorkerRequest) => {
  port.postMessage({ id, result: await verify(request, options) } satisfies WorkerMessage);
});
port.postMessage({ ready: true } satisfies WorkerMessage);
