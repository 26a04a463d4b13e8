import { readFile } from 'node:fs/promises';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  RESPONSE_STYLES,
  TASK_CHARS,
  TASK_SPECIAL_TOKENS,
  TASK_VOCAB,
  TRACE_FORMATS,
  generateProblem,
  injectError,
  makeTaskTokenizer,
  renderPrompt,
  renderSolution,
  renderTrace,
} from '../lib/task/index.js';
import { Rng } from '../lib/util/rng.js';

const { tokenizer: tokenizerJson, tokenizerConfig } = makeTaskTokenizer();
const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);

/** Prompts and responses in every style and format, with and without errors. */
function renderedTexts(count: number): string[] {
  const rng = new Rng(2024);
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const problem = generateProblem(rng);
    texts.push(renderPrompt(problem), ...RESPONSE_STYLES.map((style) => renderSolution(problem, style)));
    const { trace } = injectError(problem, rng);
    texts.push(...TRACE_FORMATS.map((format) => renderTrace(trace, format)));
  }
  return texts;
}

function renderChat(messages: { role: string; content: string }[], addGenerationPrompt = false): string {
  // @huggingface/jinja, like transformers, provides raise_exception.
  return new Template(tokenizerConfig.chat_template as string).render({ messages, add_generation_prompt: addGenerationPrompt });
}

test('vocabulary: 83 distinct entries, specials first', () => {
  expect(TASK_VOCAB).toHaveLength(83);
  expect(new Set(TASK_VOCAB).size).toBe(83);
  expect(TASK_VOCAB.slice(0, 4)).toEqual(['<pad>', '<bos>', '<eos>', '<sep>']);
  expect(TASK_CHARS.every((char) => char.length === 1)).toBe(true);
  expect(tokenizer.get_vocab(true).size).toBe(83);
});

test('every rendered string encodes one token per character and decodes back', () => {
  for (const text of renderedTexts(300)) {
    const { ids } = tokenizer.encode(text);
    expect(ids).toHaveLength(text.length);
    expect(ids.map((id: number) => TASK_VOCAB[id]).join('')).toBe(text);
    expect(tokenizer.decode(ids)).toBe(text);
  }
});

test('special tokens are single tokens; the chat template lays out <bos> prompt <sep> response <eos>', () => {
  const prompt = 'Compute 7 +5 *3 -4 step by step.';
  const response = renderSolution({
    start: 7,
    operations: [
      { op: '+', operand: 5 },
      { op: '*', operand: 3 },
      { op: '-', operand: 4 },
    ],
  });
  const text = renderChat([
    { role: 'user', content: prompt },
    { role: 'assistant', content: response },
  ]);
  expect(text).toBe(`<bos>${prompt}<sep>${response}<eos>`);
  const { ids } = tokenizer.encode(text);
  const specialIds = TASK_SPECIAL_TOKENS.map((token) => tokenizer.token_to_id(token));
  expect(specialIds).toEqual([0, 1, 2, 3]);
  expect(ids).toHaveLength(prompt.length + response.length + 3);
  expect([ids[0], ids[prompt.length + 1], ids.at(-1)]).toEqual([1, 3, 2]);
  expect(tokenizer.decode(ids, { skip_special_tokens: true })).toBe(prompt + response);

  expect(renderChat([{ role: 'user', content: prompt }], true)).toBe(`<bos>${prompt}<sep>`);
  expect(() => renderChat([{ role: 'system', content: 'x' }])).toThrow(/only user and assistant/);
});

test('the committed fixtures/task-tokenizer files load and tokenize the same way', async () => {
  const load = async (name: string) => JSON.parse(await readFile(`fixtures/task-tokenizer/${name}`, 'utf8'));
  const fromFiles = new Tokenizer(await load('tokenizer.json'), await load('tokenizer_config.json'));
  const text = `<bos>${renderedTexts(1).join('<sep>')}<eos>`;
  expect(fromFiles.encode(text).ids).toEqual(tokenizer.encode(text).ids);
});
