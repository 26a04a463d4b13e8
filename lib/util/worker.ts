// Worker threads running a module that sits next to the caller: its compiled `.js` (dist/, or a bundle's sibling),
// or, from the TypeScript sources (jest runs them untranspiled on disk, so there is no `.js`), its `.ts` through the
// module hooks PREFIX_RL_TS_LOADER names (the test setup points it at test/helpers/ts-loader.mjs).
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** A worker running `<name>.js` (or `.ts`) beside the module whose import.meta.url is `callerUrl`. */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`${name}.js`, callerUrl), options);
  const loader = process.env.PREFIX_RL_TS_LOADER;
  if (!loader) throw new Error(`${name}: running from TypeScript sources needs PREFIX_RL_TS_LOADER (module hooks that load .ts files)`);
  const entry = new URL(`${name}.ts`, callerUrl).href;
  const boot = `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(loader).href)}); await import(${JSON.stringify(entry)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), options);
}
