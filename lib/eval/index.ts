export * from './processbench.js';
export * from './bon.js';
