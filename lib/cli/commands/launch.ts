import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism, constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { CommandModule } from 'yargs';
import { launchVariables } from '../../distributed/index.js';
import { packageRoot } from '../../util/package.js';
import { TIMEOUT_VARIABLE } from '../launched.js';

interface LaunchArgs {
  nproc: number;
  nnodes: number;
  'node-rank': number;
  'master-addr': string;
  'master-port'?: number;
  timeout?: number;
  grace: number;
  exec: boolean;
  '--'?: (string | number)[];
}

/**
 * `prefix-rl launch`: torchrun's job for machines without it. Starts --nproc processes on this node with the
 * variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT) and an
 * intra-op thread share of the cores each; rank 0 keeps the terminal, the others' lines are prefixed. When one
 * exits with an error the others get --grace seconds to report theirs, then are stopped; the exit code is the
 * first failure's.
 */
export const launchCommand: CommandModule<object, LaunchArgs> = {
  command: 'launch',
  describe: 'Run a training command as a data-parallel job on this node (torchrun-compatible environment): launch --nproc 2 -- sft ...',
  builder: (y) =>
    y
      .parserConfiguration({ 'populate--': true })
      .option('nproc', { type: 'number', demandOption: true, describe: 'Processes on this node (e.g. one per GPU)' })
      .option('nnodes', { type: 'number', default: 1, describe: 'Nodes in the job' })
      .option('node-rank', { type: 'number', default: 0, describe: "This node's index in [0, nnodes)" })
      .option('master-addr', { type: 'string', default: '127.0.0.1', describe: "Host of rank 0 (node 0's address when nnodes > 1)" })
      .option('master-port', { type: 'number', describe: "Port of rank 0's store (default: a free port on one node, 29500 on several)" })
      .option('timeout', { type: 'number', describe: `Seconds a collective waits for the other ranks (sets ${TIMEOUT_VARIABLE}; default 1800)` })
      .option('grace', { type: 'number', default: 30, describe: 'Seconds the other ranks get to exit after one fails' })
      .option('exec', {
        type: 'boolean',
        default: false,
        describe: 'The command is an executable with its arguments (as torchrun --no-python), not a prefix-rl command',
      })
      .check((args) => {
        const positive = (name: string, value: number) => {
          if (!(Number.isInteger(value) && value >= 1)) throw new Error(`--${name} must be a positive integer`);
        };
        positive('nproc', args.nproc);
        positive('nnodes', args.nnodes);
        if (!(Number.isInteger(args['node-rank']) && args['node-rank'] >= 0 && args['node-rank'] < args.nnodes)) {
          throw new Error('--node-rank must be an integer in [0, nnodes)');
        }
        if (
          args['master-port'] !== undefined &&
          !(Number.isInteger(args['master-port']) && args['master-port'] >= 1 && args['master-port'] <= 65535)
        ) {
          throw new Error('--master-port must be in [1, 65535]');
        }
        if (args.timeout !== undefined && !(args.timeout > 0)) throw new Error('--timeout must be > 0');
        if (!(args['--'] as unknown[] | undefined)?.length)
          throw new Error('name the command to run after --, e.g. launch --nproc 2 -- sft --data ...');
        return true;
      }),
  handler: async (args) => {
    const command = args['--']!.map(String);
    const { nproc, nnodes } = args;
    const nodeRank = args['node-rank'];
    const port = args['master-port'] ?? (nnodes === 1 ? await freePort() : 29500);
    const [file, argv] = args.exec ? [command[0], command.slice(1)] : [process.execPath, [join(packageRoot(), 'bin', 'prefix-rl.js'), ...command]];
    const threads = String(Math.max(1, Math.floor(availableParallelism() / nproc)));
    const children: ChildProcess[] = [];
    let firstFailure: { rank: number; code: number } | undefined;
    const exits = Array.from({ length: nproc }, (_, local) => {
      const rank = nodeRank * nproc + local;
      const place = { rank, localRank: local, worldSize: nproc * nnodes, localWorldSize: nproc, masterAddr: args['master-addr'], masterPort: port };
      const env = {
        ...process.env,
        ...launchVariables(place, nodeRank),
        PREFIX_RL_NUM_THREADS: process.env.PREFIX_RL_NUM_THREADS ?? threads,
        OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? threads,
        ...(args.timeout !== undefined && { [TIMEOUT_VARIABLE]: String(args.timeout) }),
      };
      const child = spawn(file, argv, { env, stdio: rank === 0 ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      if (rank !== 0) {
        for (const [stream, out] of [
          [child.stdout!, process.stdout],
          [child.stderr!, process.stderr],
        ] as const) {
          createInterface({ input: stream }).on('line', (line) => out.write(`[rank ${rank}] ${line}\n`));
        }
      }
      return new Promise<void>((resolve) => {
        child.on('error', (err) => {
          process.stderr.write(`launch: rank ${rank} could not start ${file}: ${err.message}\n`);
          // The others would wait for it at the rendezvous until the timeout.
          if (!firstFailure) stopOthers(children, args.grace);
          firstFailure ??= { rank, code: 127 };
          resolve();
        });
        child.on('exit', (code, signal) => {
          if (code !== 0) {
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            if (!firstFailure) {
              // A signal's death reads as the shell reports it, 128 + its number (SIGKILL, an OOM kill: 137).
              firstFailure = { rank, code: code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1) };
              process.stderr.write(`launch: rank ${rank} ${how}; the other ranks get ${args.grace} s to finish\n`);
              stopOthers(children, args.grace);
            }
          }
          resolve();
        });
      });
    });
    const forward = (signal: NodeJS.Signals) => children.forEach((child) => child.exitCode === null && child.kill(signal));
    process.on('SIGINT', forward).on('SIGTERM', forward);
    try {
      await Promise.all(exits);
    } finally {
      process.off('SIGINT', forward).off('SIGTERM', forward);
    }
    if (firstFailure) process.exitCode = firstFailure.code;
  },
};

/** After `grace` seconds, SIGTERM to the children still running, and SIGKILL 5 s later. */
function stopOthers(children: readonly ChildProcess[], grace: number): void {
  const running = () => children.filter((child) => child.exitCode === null && child.signalCode === null);
  setTimeout(() => {
    running().forEach((child) => child.kill('SIGTERM'));
    setTimeout(() => running().forEach((child) => child.kill('SIGKILL')), 5000).unref();
  }, grace * 1000).unref();
}

/** A port no one listens on now (the store binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
