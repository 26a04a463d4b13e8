// prefix-rl/rollout: sampled, verified responses to RL prompts.
export * from './rollouts.js';
