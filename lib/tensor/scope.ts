// Disposal scopes (like tf.tidy or TorchSharp's DisposeScope): every Tensor created inside `tidy` is disposed when
// it ends, except the ones it returns and the ones marked with `keep()`. Scopes follow async code through
// AsyncLocalStorage, so concurrent async scopes never adopt each other's tensors.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

class Scope {
  readonly tracked = new Set<Disposable>();
  constructor(readonly parent: Scope | undefined) {}
}

const current = new AsyncLocalStorage<Scope>();

/** Registers a new tensor with the innermost active scope (no-op outside scopes). */
export function track(item: Disposable): void {
  current.getStore()?.tracked.add(item);
}

/** Takes `item` out of every scope: the caller now owns it and must dispose it. */
export function untrack(item: Disposable): void {
  for (let scope = current.getStore(); scope; scope = scope.parent) scope.tracked.delete(item);
}

/** Collects every Disposable reachable from a returned value (arrays, Maps, plain objects). */
function collect(value: unknown, into: Set<Disposable>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable).dispose === 'function' && 'isDisposed' in (value as object)) {
    into.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) for (const item of value) collect(item, into, seen);
  else if (value instanceof Map) for (const item of value.values()) collect(item, into, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const item of Object.values(value)) collect(item, into, seen);
}

function close(scope: Scope, result: unknown): void {
  const kept = new Set<Disposable>();
  collect(result, kept);
  for (const item of scope.tracked) {
    if (kept.has(item)) scope.parent?.tracked.add(item);
    else item.dispose();
  }
  scope.tracked.clear();
}

/**
 * Runs `fn` in a new scope and disposes the tensors it created but did not return. Works for sync and async
 * functions; for an async `fn` the scope closes when its promise settles.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Scope(current.getStore());
  let result: T;
  try {
    result = current.run(scope, fn);
  } catch (err) {
    close(scope, undefined);
    throw err;
  }
  if (result instanceof Promise) {
    return result.then(
      (value) => {
        close(scope, value);
        return value;
      },
      (err) => {
        close(scope, undefined);
        throw err;
      },
    ) as T;
  }
  close(scope, result);
  return result;
}
