#!/usr/bin/env node
// Thin shim: the CLI lives in lib/cli (compiled to dist/ by `npm run build:ts`).
import { main } from '../dist/lib/cli/main.js';

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`prefix-rl: ${err?.message ?? err}\n`);
  process.exitCode = 1;
});
