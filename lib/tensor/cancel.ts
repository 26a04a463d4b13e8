// Connects an AbortSignal to a native CancelToken for the duration of one native job.
import { addon, type NativeCancelToken } from '../native/addon.js';

/** The error every aborted operation rejects with (`name` AbortError, `code` ABORT_ERR, like Node's own). */
export function abortError(): Error {
  const error = new Error('the operation was aborted');
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}

export async function withCancel<T>(signal: AbortSignal | undefined, start: (token?: NativeCancelToken) => Promise<T>): Promise<T> {
  if (!signal) return start(undefined);
  if (signal.aborted) throw abortError();
  const token = new (addon().CancelToken)();
  const onAbort = () => token.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await start(token);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
