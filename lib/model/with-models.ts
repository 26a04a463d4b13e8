// The models a command loads, disposed together when it ends, however it ends.
import { loadModel, type CausalLM } from './causal-lm.js';

export async function withModels<T>(body: (load: (dir: string) => Promise<CausalLM>) => Promise<T>): Promise<T> {
  const loaded: CausalLM[] = [];
  try {
    return await body(async (dir) => {
      const model = await loadModel(dir);
      loaded.push(model);
      return model;
    });
  } finally {
    for (const model of loaded) model.dispose();
  }
}
