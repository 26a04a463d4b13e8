// Hugging Face tokenizers from a checkpoint folder: tokenizer.json through @huggingface/tokenizers, the chat
// template (chat_template.jinja or tokenizer_config.json's chat_template) through @huggingface/jinja, as
// transformers' PreTrainedTokenizerFast and apply_chat_template do; the template renders in a bounded worker.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { DEFAULT_TEMPLATE_LIMITS, TemplateSandbox, type TemplateLimits } from './template-sandbox.js';

export { DEFAULT_TEMPLATE_LIMITS, type TemplateLimits } from './template-sandbox.js';

/** One chat turn; templates may read more fields than role and content (tool calls, reasoning). */
export interface ChatTurn {
  role: string;
  content: string;
  [field: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn (default false). */
  addGenerationPrompt?: boolean;
  /** Extra template variables, e.g. Qwen3's `enable_thinking`. */
  variables?: Record<string, unknown>;
}

/** A tokenizer folder that cannot be read, or a chat template that fails; the message names the file. */
export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
}

type TokenizerConfig = Record<string, unknown>;

/** A special token as tokenizer_config.json stores it: a string, or an AddedToken object with `content`. */
function specialToken(config: TokenizerConfig, key: string): string | null {
  const value = config[key];
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return null;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError(`${path}: ${(err as Error).message}`);
  }
}

/**
 * What a tokenizer can encode, when it can drop characters: a BPE model with no unknown token, no byte fallback, no
 * byte-level pre-tokenizer and no normalizer encodes only characters of its alphabet (its one-character tokens)
 * and silently drops the rest, as @huggingface/tokenizers does. null for every other tokenizer (nothing is dropped).
 */
interface Alphabet {
  characters: Set<string>;
  /** Added (special) tokens, matched whole before the model sees the text: their characters need not be in it. */
  added: RegExp | null;
}

function droppingAlphabet(json: Record<string, unknown>): Alphabet | null {
  const model = json.model as { type?: string; unk_token?: string | null; byte_fallback?: boolean; vocab?: Record<string, number> } | undefined;
  const mentions = (value: unknown, type: string): boolean => JSON.stringify(value ?? null).includes(`"${type}"`);
  if (model?.type !== 'BPE' || model.unk_token || model.byte_fallback || json.normalizer || mentions(json.pre_tokenizer, 'ByteLevel')) return null;
  const characters = new Set(Object.keys(model.vocab ?? {}).filter((token) => [...token].length === 1));
  const added = ((json.added_tokens ?? []) as { content?: string }[]).map((t) => t.content).filter((c): c is string => !!c);
  const escaped = added.sort((a, b) => b.length - a.length).map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return { characters, added: escaped.length ? new RegExp(escaped.join('|'), 'g') : null };
}

/** The chat template: chat_template.jinja (transformers >= 4.43 saves it there), else tokenizer_config.json's. */
async function readChatTemplate(dir: string, config: TokenizerConfig): Promise<string | null> {
  const file = join(dir, 'chat_template.jinja');
  if (existsSync(file)) return readFile(file, 'utf8');
  const template = config.chat_template;
  if (typeof template === 'string') return template;
  // A list of named templates: the one named "default".
  if (Array.isArray(template)) {
    const named = template.find((t: { name?: unknown }) => t?.name === 'default') as { template?: unknown } | undefined;
    if (typeof named?.template === 'string') return named.template;
  }
  return null;
}

export class Tokenizer {
  private constructor(
    private readonly tokenizer: HfTokenizer,
    private readonly config: TokenizerConfig,
    /** The chat template's source (parsed once at load, so that a malformed one fails there), or null. */
    private readonly template: string | null,
    /** The folder it was loaded from. */
    readonly source: string,
    private readonly alphabet: Alphabet | null,
    private readonly sandbox: TemplateSandbox,
  ) {}

  /**
   * Loads tokenizer.json, tokenizer_config.json (optional) and the chat template (optional) from `dir`. The
   * template renders in a worker under `templateLimits` (template-sandbox.ts; default 10 s, 256 MiB, 16 Mi chars).
   */
  static async load(dir: string, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    if (!existsSync(tokenizerPath)) throw new TokenizerError(`${dir}: no tokenizer.json (only fast tokenizers are supported)`);
    const tokenizerJson = await readJson(tokenizerPath);
    const configPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(configPath) ? await readJson(configPath) : {};
    let tokenizer: HfTokenizer;
    try {
      // transformers leaves spaces before punctuation alone unless the config asks (its default is false; the
      // library's is true, which would rewrite " ," in decoded text, e.g. inside a program's string literal).
      tokenizer = new HfTokenizer(tokenizerJson, { ...config, clean_up_tokenization_spaces: config.clean_up_tokenization_spaces ?? false });
    } catch (err) {
      throw new TokenizerError(`${tokenizerPath}: ${(err as Error).message}`);
    }
    const template = await readChatTemplate(dir, config);
    if (template !== null) {
      try {
        new Template(template);
      } catch (err) {
        throw new TokenizerError(`${dir}: the chat template does not parse (${(err as Error).message})`);
      }
    }
    const sandbox = options.templateLimits ? new TemplateSandbox({ ...DEFAULT_TEMPLATE_LIMITS, ...options.templateLimits }) : sharedSandbox();
    return new Tokenizer(tokenizer, config, template, dir, droppingAlphabet(tokenizerJson), sandbox);
  }

  /**
   * Token ids of `text`; special tokens the post-processor adds (e.g. BOS) only with addSpecialTokens (default true).
   * A character this tokenizer cannot represent (see droppingAlphabet) is refused, naming it, rather than dropped.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (this.alphabet) this.checkAlphabet(text, this.alphabet);
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  private checkAlphabet(text: string, { characters, added }: Alphabet): void {
    const skips = added ? [...text.matchAll(added)].map((m) => [m.index, m.index + m[0].length]) : [];
    let index = 0;
    let skip = 0;
    for (const character of text) {
      while (skip < skips.length && index >= skips[skip][1]) skip++;
      const inAddedToken = skip < skips.length && index >= skips[skip][0];
      if (!inAddedToken && !characters.has(character)) {
        const code = `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
        throw new TokenizerError(
          `${this.source}: character ${JSON.stringify(text.slice(index, index + character.length))} (${code}) at index ${index} is not in this ` +
            "tokenizer's vocabulary, which has no unknown token or byte fallback: encoding would drop it",
        );
      }
      index += character.length;
    }
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  /** Entries of the vocabulary, added tokens included (the model's vocab_size may be larger). */
  get vocabularySize(): number {
    return this.tokenizer.get_vocab(true).size;
  }

  get bosTokenId(): number | null {
    return this.specialId('bos_token');
  }
  get eosTokenId(): number | null {
    return this.specialId('eos_token');
  }
  get padTokenId(): number | null {
    return this.specialId('pad_token');
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Renders `messages` with the chat template, as transformers' apply_chat_template(tokenize=False). */
  applyChatTemplate(messages: readonly ChatTurn[], options: ChatTemplateOptions = {}): string {
    if (!this.template) throw new TokenizerError(`${this.source}: the tokenizer has no chat template`);
    const specials = Object.fromEntries(
      ['bos_token', 'eos_token', 'pad_token', 'unk_token'].map((key) => [key, specialToken(this.config, key) ?? '']),
    );
    try {
      return this.sandbox.render(this.template, {
        ...specials,
        ...options.variables,
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (err) {
      throw new TokenizerError(`${this.source}: the chat template failed (${(err as Error).message})`);
    }
  }

  /** Token ids of the rendered chat. The template writes the special tokens, so none are added on top. */
  encodeChat(messages: readonly ChatTurn[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  private specialId(key: string): number | null {
    const token = specialToken(this.config, key);
    return token === null ? null : (this.tokenizer.token_to_id(token) ?? null);
  }
}

export interface LoadTokenizerOptions {
  /** Bounds on one chat-template render, beyond the defaults (DEFAULT_TEMPLATE_LIMITS). */
  templateLimits?: Partial<TemplateLimits>;
}

/** Loads the tokenizer of a checkpoint folder (see Tokenizer.load). */
export function loadTokenizer(dir: string, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  return Tokenizer.load(dir, options);
}

/** The sandbox of every tokenizer loaded with the default limits: one worker for the process. */
let shared: TemplateSandbox | undefined;
const sharedSandbox = () => (shared ??= new TemplateSandbox());
