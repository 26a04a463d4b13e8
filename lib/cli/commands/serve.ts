import type { CommandModule } from 'yargs';
import { checkDevice, type ModelDType } from '../../model/index.js';
import { ModelServer } from '../../serve/index.js';
import { PLACEMENT_OPTIONS } from '../run-flags.js';

interface ServeArgs {
  model: string;
  'reward-model'?: string;
  reference?: string;
  host: string;
  port: number;
  device: string;
  dtype: ModelDType;
  'served-model-name'?: string;
  'max-tokens': number;
  'max-n': number;
  'max-body-bytes': number;
  'max-batch-rows': number;
  'batch-window-ms': number;
  'allow-reload': boolean;
  'shutdown-grace': number;
  log: boolean;
}

/** `prefix-rl serve`: the OpenAI-compatible server (lib/serve), until SIGTERM or SIGINT, which drain it. */
export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: "Serve a policy over an OpenAI-compatible HTTP API (completions, chat, streaming) and an implicit reward model's step scores",
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Policy checkpoint folder (with its tokenizer)' })
      .option('reward-model', { type: 'string', describe: 'π_φ for /v1/score (with --reference)' })
      .option('reference', { type: 'string', describe: 'π_ref of the reward model' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on (0.0.0.0: every interface)' })
      .option('port', { type: 'number', default: 8000, describe: 'Port (0: a free one, printed)' })
      .options(PLACEMENT_OPTIONS)
      .option('served-model-name', { type: 'string', describe: "The model's id in the API (default: the folder's name)" })
      .option('max-tokens', { type: 'number', default: 4096, describe: 'Largest max_tokens a request may ask' })
      .option('max-n', { type: 'number', default: 16, describe: 'Largest n (and number of prompts) of a request' })
      .option('max-body-bytes', { type: 'number', default: 4 << 20, describe: 'Largest request body' })
      .option('max-batch-rows', { type: 'number', default: 64, describe: 'Rows of one batched sampling call' })
      .option('batch-window-ms', { type: 'number', default: 5, describe: 'How long an idle server waits for more requests to batch' })
      .option('allow-reload', { type: 'boolean', default: false, describe: 'Enable POST /v1/reload {"model": DIR} (new weights from a checkpoint)' })
      .option('shutdown-grace', { type: 'number', default: 30, describe: 'Seconds in-flight requests get to finish after SIGTERM' })
      .option('log', { type: 'boolean', default: false, describe: 'Log every request (JSON lines on stdout)' })
      .check((args) => {
        for (const name of ['max-tokens', 'max-n', 'max-body-bytes', 'max-batch-rows'] as const) {
          if (!(Number.isInteger(args[name]) && args[name] >= 1)) throw new Error(`--${name} must be a positive integer`);
        }
        if (!(Number.isInteger(args.port) && args.port >= 0 && args.port <= 65535)) throw new Error('--port must be in [0, 65535]');
        if (!(args['batch-window-ms'] >= 0)) throw new Error('--batch-window-ms must be >= 0');
        return true;
      }),
  handler: async (args) => {
    const server = await ModelServer.start({
      model: args.model,
      rewardModel: args['reward-model'],
      reference: args.reference,
      host: args.host,
      port: args.port,
      device: checkDevice(args.device),
      dtype: args.dtype,
      servedModelName: args['served-model-name'],
      maxTokens: args['max-tokens'],
      maxN: args['max-n'],
      maxBodyBytes: args['max-body-bytes'],
      maxBatchRows: args['max-batch-rows'],
      batchWindowMs: args['batch-window-ms'],
      allowReload: args['allow-reload'],
      log: args.log,
    });
    process.stderr.write(`prefix-rl serve: listening on ${server.url}\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.stderr.write(`prefix-rl serve: ${signal}, draining (at most ${args['shutdown-grace']} s)\n`);
        void server.close(args['shutdown-grace']).then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
};
