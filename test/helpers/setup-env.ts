// Jest setup (every test file): verifier workers started from the TypeScript sources load them through these hooks.
import { fileURLToPath } from 'node:url';

process.env.PREFIX_RL_TS_LOADER ??= fileURLToPath(new URL('./ts-loader.mjs', import.meta.url));
