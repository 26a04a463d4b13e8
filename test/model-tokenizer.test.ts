// Tokenizer loading from a checkpoint folder: tokenizer.json + tokenizer_config.json + chat template.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenizerError, loadTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';

const MODEL = join(process.cwd(), 'fixtures/models/qwen3-tiny');

let tokenizer: Tokenizer;
let tmp: string;
beforeAll(async () => {
  tokenizer = await loadTokenizer(MODEL);
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-tokenizer-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('encodes and decodes, with the special ids of tokenizer_config.json', () => {
  const ids = tokenizer.encode('2+3=5');
  expect(tokenizer.decode(ids)).toBe('2+3=5');
  expect(ids.map((id) => tokenizer.idToToken(id))).toEqual(['2', '+', '3', '=', '5']);
  expect([tokenizer.padTokenId, tokenizer.bosTokenId, tokenizer.eosTokenId]).toEqual([0, 1, 2]);
  expect(tokenizer.tokenToId('<sep>')).toBe(3);
  expect(tokenizer.vocabularySize).toBe(83);
  expect(tokenizer.decode([1, ...ids, 2], { skipSpecialTokens: true })).toBe('2+3=5');
});

test('a character outside the vocabulary (no unknown token, no byte fallback) is refused, not dropped', () => {
  expect(() => tokenizer.encode('2+3=5 é')).toThrow(
    new RegExp(`${MODEL}: character "é" \\(U\\+00E9\\) at index 6 is not in this tokenizer's vocabulary`),
  );
  expect(() => tokenizer.encode('😀')).toThrow(/\(U\+1F600\) at index 0/);
  // Special tokens are matched whole, so their characters need not be one-character tokens.
  expect(tokenizer.encode('<bos>1+1<sep>')).toEqual([1, ...tokenizer.encode('1+1'), 3]);
  expect(() => tokenizer.encodeChat([{ role: 'user', content: 'x\u0000' }])).toThrow(/U\+0000/);
});

test('renders and encodes a chat with the template', () => {
  const messages = [
    { role: 'user', content: '1+1' },
    { role: 'assistant', content: '2' },
  ];
  expect(tokenizer.applyChatTemplate(messages)).toBe('<bos>1+1<sep>2<eos>');
  expect(tokenizer.applyChatTemplate(messages.slice(0, 1), { addGenerationPrompt: true })).toBe('<bos>1+1<sep>');
  expect(tokenizer.encodeChat(messages)).toEqual([1, ...tokenizer.encode('1+1'), 3, ...tokenizer.encode('2'), 2]);
});

test('template errors and missing files are TokenizerErrors naming the folder', async () => {
  expect(() => tokenizer.applyChatTemplate([{ role: 'system', content: 'x' }])).toThrow(/only user and assistant roles/);
  await expect(loadTokenizer(tmp)).rejects.toThrow(TokenizerError);
  await expect(loadTokenizer(tmp)).rejects.toThrow(`${tmp}: no tokenizer.json`);
});

test('chat_template.jinja takes precedence over tokenizer_config.json', async () => {
  const dir = join(tmp, 'jinja');
  await cp(MODEL, dir, { recursive: true });
  await writeFile(join(dir, 'chat_template.jinja'), "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}{{ eos_token }}");
  const withFile = await loadTokenizer(dir);
  expect(withFile.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('[user]hi<eos>');
});

test('a chat template that loops or floods is stopped by its bounds with a clear error; the next render works', async () => {
  const dir = join(tmp, 'hostile');
  await cp(MODEL, dir, { recursive: true });
  await writeFile(join(dir, 'chat_template.jinja'), '{% for i in range(100000000) %}{{ messages[0].content }}{% endfor %}');
  const hostile = await loadTokenizer(dir, { templateLimits: { timeoutMs: 1000, maxOutputChars: 1000 } });
  const started = performance.now();
  expect(() => hostile.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(
    new RegExp(`${dir}: the chat template failed \\(rendering did not finish within 1 s or needed more than 256 MiB`),
  );
  expect(performance.now() - started).toBeLessThan(60_000);
  await writeFile(join(dir, 'chat_template.jinja'), '{% for i in range(2000) %}{{ messages[0].content }}{% endfor %}');
  const flood = await loadTokenizer(dir, { templateLimits: { maxOutputChars: 1000 } });
  expect(() => flood.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/it rendered 2000 characters, more than the 1000 allowed/);
  expect(tokenizer.applyChatTemplate([{ role: 'user', content: '1+1' }], { addGenerationPrompt: true })).toBe('<bos>1+1<sep>');
});

test('decoding leaves spaces before punctuation alone unless tokenizer_config.json asks, as transformers does', async () => {
  const dir = join(tmp, 'no-cleanup');
  await cp(MODEL, dir, { recursive: true });
  const config = JSON.parse(await readFile(join(MODEL, 'tokenizer_config.json'), 'utf8'));
  const text = '3 , 4 ? it is 5 .';
  for (const [setting, expected] of [
    [undefined, text],
    [false, text],
    [true, '3, 4? it is 5.'],
  ] as const) {
    const { clean_up_tokenization_spaces: _drop, ...rest } = config;
    await writeFile(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify(setting === undefined ? rest : { ...rest, clean_up_tokenization_spaces: setting }),
    );
    const loaded = await loadTokenizer(dir);
    expect(loaded.decode(loaded.encode(text, { addSpecialTokens: false }))).toBe(expected);
  }
});
