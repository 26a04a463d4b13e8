// A registry of named entries (advantage estimators, reward models, policy losses): registration by the file that
// defines an entry, lookup by name with an error that lists what is registered.
export class Registry<T extends { readonly name: string }> {
  readonly #entries = new Map<string, T>();

  /** `kind` names an entry in errors, e.g. 'advantage estimator'. */
  constructor(readonly kind: string) {}

  register(entry: T): T {
    if (this.#entries.has(entry.name)) throw new Error(`${this.kind} '${entry.name}' is already registered`);
    this.#entries.set(entry.name, entry);
    return entry;
  }

  get(name: string): T {
    const entry = this.#entries.get(name);
    if (!entry) throw new Error(`unknown ${this.kind} '${name}' (registered: ${this.names().join(', ')})`);
    return entry;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Every registered name, sorted. */
  names(): string[] {
    return [...this.#entries.keys()].sort();
  }
}
