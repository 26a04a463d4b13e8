// prefix-rl/train: the training loops (SFT, reward models, RL) and what they share.
export * from './common.js';
export * from './sft.js';
export * from './rm.js';
export * from './rl.js';
