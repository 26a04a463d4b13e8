export * from './processbench.js';
export * from './bon.js';
export * from './accuracy.js';
export * from './reward-model.js';
export * from './policy.js';
export * from './td-analysis.js';
export * from './score.js';
