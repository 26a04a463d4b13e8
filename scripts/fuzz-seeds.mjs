// Seeds for scripts/fuzz.sh: each fixture checkpoint's header with a truncated data section (the fuzzer's inputs are
// at most 64 KiB), a few small valid files, and JSON documents. Usage: node scripts/fuzz-seeds.mjs OUT_DIR
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
let n = 0;
const seed = (bytes) => writeFileSync(join(out, `seed-${String(n++).padStart(3, '0')}`), bytes);

/** A safetensors file: the 8-byte header length, the header, `data`. */
function safetensors(header, data = Buffer.alloc(0)) {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

for (const model of readdirSync('fixtures/models')) {
  for (const file of readdirSync(join('fixtures/models', model)).filter((f) => f.endsWith('.safetensors'))) {
    const bytes = readFileSync(join('fixtures/models', model, file));
    const end = 8 + Number(bytes.readBigUInt64LE(0));
    seed(bytes.subarray(0, Math.min(bytes.length, end + 4096)));
  }
  for (const file of readdirSync(join('fixtures/models', model)).filter((f) => f.endsWith('.json'))) {
    const text = readFileSync(join('fixtures/models', model, file));
    if (text.length <= 65536) seed(text);
  }
}
seed(safetensors({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } }, Buffer.alloc(16)));
seed(
  safetensors({ b: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] }, c: { dtype: 'I64', shape: [], data_offsets: [6, 14] } }, Buffer.alloc(14)),
);
seed(safetensors({ e: { dtype: 'U8', shape: [0], data_offsets: [0, 0] } }));
seed(Buffer.from('{"a": [1, 2.5e-3, -0, true, false, null, "\\u00e9\\ud83d\\ude00", {"b": {}}]}'));
console.log(`fuzz-seeds: ${n} seeds in ${out}`);
