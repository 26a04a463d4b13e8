// Hugging Face tokenizers from a checkpoint folder: tokenizer.json through @huggingface/tokenizers, the chat
// template (chat_template.jinja or tokenizer_config.json's chat_template) through @huggingface/jinja, as
// transformers' PreTrainedTokenizerFast and apply_chat_template do.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

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
    private readonly template: Template | null,
    /** The folder it was loaded from. */
    readonly source: string,
  ) {}

  /** Loads tokenizer.json, tokenizer_config.json (optional) and the chat template (optional) from `dir`. */
  static async load(dir: string): Promise<Tokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    if (!existsSync(tokenizerPath)) throw new TokenizerError(`${dir}: no tokenizer.json (only fast tokenizers are supported)`);
    const tokenizerJson = await readJson(tokenizerPath);
    const configPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(configPath) ? await readJson(configPath) : {};
    let tokenizer: HfTokenizer;
    try {
      tokenizer = new HfTokenizer(tokenizerJson, config);
    } catch (err) {
      throw new TokenizerError(`${tokenizerPath}: ${(err as Error).message}`);
    }
    const source = await readChatTemplate(dir, config);
    let template: Template | null = null;
    if (source !== null) {
      try {
        template = new Template(source);
      } catch (err) {
        throw new TokenizerError(`${dir}: the chat template does not parse (${(err as Error).message})`);
      }
    }
    return new Tokenizer(tokenizer, config, template, dir);
  }

  /** Token ids of `text`; special tokens the post-processor adds (e.g. BOS) only with addSpecialTokens (default true). */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
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
      return this.template.render({
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

/** Loads the tokenizer of a checkpoint folder (see Tokenizer.load). */
export function loadTokenizer(dir: string): Promise<Tokenizer> {
  return Tokenizer.load(dir);
}
