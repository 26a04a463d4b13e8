// prefix-rl/rollout: sampled, verified responses to RL prompts, and the OpenAI-compatible engine that samples them.
export * from './rollouts.js';
export { OpenAIEngine, type OpenAIEngineOptions } from './openai.js';
