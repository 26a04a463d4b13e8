// The chat-template worker of template-sandbox.ts: renders templates on request, on its own thread and heap, so that
// a hostile template (an endless loop, an output of gigabytes) fails its render and not the process.
import { Template } from '@huggingface/jinja';
import { workerData, type MessagePort } from 'node:worker_threads';

export interface RenderRequest {
  source: string;
  context: Record<string, unknown>;
}
export type RenderReply = { text: string } | { error: string };

const { port, signal, maxOutputChars } = workerData as { port: MessagePort; signal: Int32Array; maxOutputChars: number };
const compiled = new Map<string, Template>();
const [READY, REPLIED] = [0, 1]; // the flag's states this side sets (template-sandbox.ts waits on them)

/** Sets the shared flag and wakes the main thread, which waits on it synchronously. */
function signalMain(state: number): void {
  Atomics.store(signal, 0, state);
  Atomics.notify(signal, 0);
}

port.on('message', ({ source, context }: RenderRequest) => {
  let reply: RenderReply;
  try {
    let template = compiled.get(source);
    if (!template) compiled.set(source, (template = new Template(source)));
    const text = template.render(context);
    reply = text.length <= maxOutputChars ? { text } : { error: `it rendered ${text.length} characters, more than the ${maxOutputChars} allowed` };
  } catch (err) {
    reply = { error: (err as Error).message };
  }
  port.postMessage(reply);
  signalMain(REPLIED); // after the post: the main thread reads the reply synchronously (receiveMessageOnPort)
});
signalMain(READY);
