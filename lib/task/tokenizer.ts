// The task's character-level tokenizer as Hugging Face files (tokenizer.json + tokenizer_config.json),
// loadable by transformers' PreTrainedTokenizerFast and by @huggingface/tokenizers.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** pad, bos, eos, sep; a sequence is `<bos> prompt <sep> response <eos>`. */
export const TASK_SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<sep>'] as const;

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
/** The 79 characters the task renders: newline, space, digits, `+-*=:.,;(){}\`, `?`, `>` and letters. */
export const TASK_CHARS: readonly string[] = [...'\n 0123456789+-*=:.,;(){}\\?>', ...LOWER, ...LOWER.toUpperCase()];

/** All 83 tokens in id order: the specials, then the characters. */
export const TASK_VOCAB: readonly string[] = [...TASK_SPECIAL_TOKENS, ...TASK_CHARS];

/** Longest sequence the task model takes (its max_position_embeddings). */
export const TASK_MAX_LENGTH = 512;

/** Renders user/assistant turns in the task layout; there is no system role. */
const CHAT_TEMPLATE = [
  '{%- for message in messages -%}',
  "{%- if message['role'] == 'user' -%}{{- '<bos>' + message['content'] -}}",
  "{%- elif message['role'] == 'assistant' -%}{{- '<sep>' + message['content'] + '<eos>' -}}",
  "{%- else -%}{{- raise_exception('The task tokenizer has only user and assistant roles.') -}}",
  '{%- endif -%}',
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<sep>' -}}{%- endif -%}",
].join('\n');

export interface TaskTokenizerFiles {
  /** Contents of tokenizer.json. */
  tokenizer: Record<string, unknown>;
  /** Contents of tokenizer_config.json. */
  tokenizerConfig: Record<string, unknown>;
}

/**
 * A BPE model with no merges splits text into single characters; with no normalizer or
 * pre-tokenizer and a Fuse decoder, decode(encode(text)) is the text. Characters outside the
 * vocabulary have no token (there is no unk), so callers should check text against TASK_CHARS.
 */
export function makeTaskTokenizer(): TaskTokenizerFiles {
  const addedToken = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const added = TASK_SPECIAL_TOKENS.map(addedToken);
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(TASK_VOCAB.map((token, id) => [token, id])),
      merges: [],
    },
  };
  const [pad, bos, eos, sep] = TASK_SPECIAL_TOKENS;
  const tokenizerConfig = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...token }) => [String(id), token])),
    pad_token: pad,
    bos_token: bos,
    eos_token: eos,
    sep_token: sep,
    model_max_length: TASK_MAX_LENGTH,
    model_input_names: ['input_ids', 'attention_mask'],
    clean_up_tokenization_spaces: false,
    chat_template: CHAT_TEMPLATE,
  };
  return { tokenizer, tokenizerConfig };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` and returns their paths. */
export async function writeTaskTokenizer(dir: string): Promise<string[]> {
  const { tokenizer, tokenizerConfig } = makeTaskTokenizer();
  await mkdir(dir, { recursive: true });
  const files: [string, unknown][] = [
    [join(dir, 'tokenizer.json'), tokenizer],
    [join(dir, 'tokenizer_config.json'), tokenizerConfig],
  ];
  for (const [path, content] of files) await writeFile(path, JSON.stringify(content, null, 2) + '\n');
  return files.map(([path]) => path);
}
