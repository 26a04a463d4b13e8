// The models a command loads, disposed together when it ends, however it ends.
import { loadModel, type CausalLM, type LoadModelOptions } from './causal-lm.js';

export async function withModels<T>(body: (load: (dir: string, options?: LoadModelOptions) => Promise<CausalLM>) => Promise<T>): Promise<T> {
  const loaded: CausalLM[] = [];
  try {
    return await body(async (dir, options) => {
      const model = await loadModel(dir, options);
      loaded.push(model);
      return model;
    });
  } finally {
    for (const model of loaded) model.dispose();
  }
}
