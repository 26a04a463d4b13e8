// The advantage-estimator registry: each estimator is one file that calls `registerAdvantage`, so a new estimator
// is one new file plus one import line in index.ts.
export type AdvantageFn<I, O> = (input: I) => O;

const estimators = new Map<string, AdvantageFn<never, unknown>>();

export function registerAdvantage<I, O>(name: string, fn: AdvantageFn<I, O>): AdvantageFn<I, O> {
  if (estimators.has(name)) throw new Error(`advantage estimator '${name}' is already registered`);
  estimators.set(name, fn as AdvantageFn<never, unknown>);
  return fn;
}

export function getAdvantage<I = unknown, O = unknown>(name: string): AdvantageFn<I, O> {
  const fn = estimators.get(name);
  if (!fn) throw new Error(`unknown advantage estimator '${name}' (known: ${listAdvantages().join(', ')})`);
  return fn as unknown as AdvantageFn<I, O>;
}

export function listAdvantages(): string[] {
  return [...estimators.keys()].sort();
}
