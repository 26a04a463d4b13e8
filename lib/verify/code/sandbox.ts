// Runs an untrusted program in a child process, contained as far as this machine allows.
//
// 'namespaces' (Linux, root or unprivileged user namespaces): util-linux `unshare` gives the program
// its own mount, network, PID, IPC and UTS namespaces; SANDBOX_SCRIPT then builds a fresh root of
// read-only binds (/usr, /etc, the interpreter) plus size-capped tmpfs /work and /tmp, chroots into
// it, drops every capability (and, as root, switches to a random unused uid so that RLIMIT_NPROC
// holds) and applies rlimits. When the namespace's first process exits, the kernel kills the rest.
// 'rlimits' (no namespaces): rlimits, a clean environment and a temp working directory only; the
// network and the file system stay reachable. See docs/VERIFY.md for what each tier contains.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Containment = 'namespaces' | 'rlimits';

export interface SandboxLimits {
  /** Wall time of one run, interpreter start-up included. */
  timeMs: number;
  /** Address-space limit (RLIMIT_AS) of each process. */
  memoryMb: number;
  /** Processes (threads included) the program may have at once (RLIMIT_NPROC). */
  processes: number;
  /** stdout beyond this many bytes stops the run. */
  outputBytes: number;
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = { timeMs: 5_000, memoryMb: 1_024, processes: 64, outputBytes: 1 << 20 };

export interface SandboxRun {
  /** The command; argv[0] is an absolute path that exists inside the sandbox. */
  argv: string[];
  /** Files written to the working directory first (name → content). */
  files: Record<string, string>;
  stdin: string;
  /** Host directories the program needs read-only (the interpreter's prefix), beyond /usr and /etc. */
  exposeDirs: string[];
  limits: SandboxLimits;
}

export interface SandboxOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  outputLimitExceeded: boolean;
  /** The sandbox itself could not be set up (stderr says why); the program never ran. */
  setupFailed: boolean;
  containment: Containment;
}

/** Exit status of SANDBOX_SCRIPT when building the sandbox fails. */
const SETUP_FAILED = 125;
/** Sandbox set-up time granted on top of the run's time limit. */
const STARTUP_ALLOWANCE_MS = 500;
const STDERR_KEEP_BYTES = 64 * 1024;
const FILE_SIZE_LIMIT = 64 << 20;
const TMPFS_SIZE = '64m';

/**
 * Runs as (namespace) root inside fresh mount/net/pid/ipc/uts namespaces. Arguments: files dir,
 * root mount point, backstop seconds, uid to run as ('' = stay root of a user namespace), dirs to
 * expose, '--', prlimit options, '--', argv. Mounts made here vanish with the namespace.
 */
const SANDBOX_SCRIPT = String.raw`
set -eu
die() { echo "sandbox setup: $*" >&2; exit ${SETUP_FAILED}; }
files=$1 root=$2 seconds=$3 uid=$4
shift 4
mount -t tmpfs -o mode=755,size=1m sandbox-root "$root" || die "tmpfs root"
expose() {
  if [ -e "$root$1" ] || [ ! -e "$1" ]; then return 0; fi
  if [ -L "$1" ]; then
    mkdir -p "$root$(dirname "$1")" && ln -s "$(readlink "$1")" "$root$1" || die "link $1"
  else
    mkdir -p "$root$1" && mount --bind "$1" "$root$1" && mount -o remount,bind,ro,nosuid,nodev "$root$1" || die "bind $1"
  fi
}
for dir in /usr /bin /sbin /lib /lib64 /lib32 /libx32 /etc; do expose "$dir"; done
while [ "$1" != "--" ]; do expose "$1"; shift; done
shift
mkdir "$root/dev" "$root/dev/shm" "$root/proc" "$root/tmp" "$root/work"
for node in null zero full random urandom; do
  touch "$root/dev/$node" && mount --bind "/dev/$node" "$root/dev/$node" || die "/dev/$node"
done
ln -s /proc/self/fd "$root/dev/fd"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc" || die "proc"
for dir in /tmp /dev/shm; do
  mount -t tmpfs -o mode=1777,size=${TMPFS_SIZE},nosuid,nodev sandbox-tmp "$root$dir" || die "tmpfs $dir"
done
mount -t tmpfs -o mode=755,size=${TMPFS_SIZE},nosuid,nodev sandbox-work "$root/work" || die "tmpfs /work"
cp -R "$files"/. "$root/work/" || die "copy files"
drop=""
if [ -n "$uid" ]; then chown -R "$uid:$uid" "$root/work"; drop="--reuid=$uid --regid=$uid --clear-groups"; fi
mount -o remount,bind,ro "$root" || die "read-only root"
# timeout stays pid 1 as root (its pdeath signal intact): if it or unshare dies, the namespace dies.
exec timeout -s KILL "$seconds" chroot "$root" setpriv $drop --no-new-privs --inh-caps=-all --bounding-set=-all \
  env -i -C /work PATH=/usr/local/bin:/usr/bin:/bin HOME=/work TMPDIR=/tmp LANG=C.UTF-8 prlimit "$@"
`;

const isRoot = () => process.getuid?.() === 0;

function unshareArgs(): string[] {
  return [...(isRoot() ? [] : ['--user', '--map-root-user']), '--mount', '--net', '--pid', '--ipc', '--uts', '--fork', '--kill-child'];
}

function prlimitArgs(limits: SandboxLimits): string[] {
  return [
    `--as=${limits.memoryMb * 2 ** 20}`,
    `--nproc=${limits.processes}`,
    `--fsize=${FILE_SIZE_LIMIT}`,
    `--cpu=${Math.ceil(limits.timeMs / 1000) + 1}`,
    '--nofile=256',
    '--core=0',
  ];
}

/** A uid no account uses, so RLIMIT_NPROC counts this run's processes only. */
const sandboxUid = () => String(randomInt(1_000_000_000, 2_000_000_000));

interface Spawned {
  command: string;
  args: string[];
  cwd: string;
}

async function spawnPlan(containment: Containment, dir: string, run: SandboxRun): Promise<Spawned> {
  const files = join(dir, 'files');
  const backstopSeconds = String(Math.ceil((run.limits.timeMs + STARTUP_ALLOWANCE_MS) / 1000) + 1);
  if (containment === 'namespaces') {
    const root = join(dir, 'root');
    await mkdir(root);
    const script = ['sh', '-c', SANDBOX_SCRIPT, 'sandbox', files, root, backstopSeconds, isRoot() ? sandboxUid() : ''];
    const args = [...unshareArgs(), ...script, ...run.exposeDirs, '--', ...prlimitArgs(run.limits), '--', ...run.argv];
    return { command: 'unshare', args, cwd: dir };
  }
  return { command: 'timeout', args: ['-s', 'KILL', backstopSeconds, 'prlimit', ...prlimitArgs(run.limits), '--', ...run.argv], cwd: files };
}

/** Kills the run's whole process group (the child was spawned as a group leader). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

async function execute(containment: Containment, run: SandboxRun): Promise<SandboxOutcome> {
  const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-sandbox-'));
  try {
    await mkdir(join(dir, 'files'));
    for (const [name, content] of Object.entries(run.files)) await writeFile(join(dir, 'files', name), content);
    const plan = await spawnPlan(containment, dir, run);
    const child = spawn(plan.command, plan.args, {
      cwd: plan.cwd,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: plan.cwd, TMPDIR: plan.cwd, LANG: 'C.UTF-8' },
    });
    let timedOut = false;
    let outputLimitExceeded = false;
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = Buffer.alloc(0);
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > run.limits.outputBytes) {
        outputLimitExceeded = true;
        killGroup(child.pid);
      } else stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = Buffer.concat([stderr, chunk]).subarray(-STDERR_KEEP_BYTES);
    });
    child.stdin.on('error', () => {}); // The program may exit without reading its input (EPIPE).
    child.stdin.end(run.stdin);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, run.limits.timeMs + STARTUP_ALLOWANCE_MS);
    // Background processes left behind by the program die with it (rlimits tier; namespaces kill them anyway).
    child.on('exit', () => killGroup(child.pid));
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, closeSignal) => resolve([code, closeSignal]));
    }).finally(() => clearTimeout(timer));
    return {
      exitCode,
      signal,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: stderr.toString('utf8'),
      timedOut,
      outputLimitExceeded,
      setupFailed: containment === 'namespaces' && exitCode === SETUP_FAILED && stderr.includes('sandbox setup:'),
      containment,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function commandWorks(command: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
}

/** The best containment this machine offers, probed once per thread by a real sandboxed run. */
async function probeContainment(): Promise<Containment | null> {
  if (process.platform === 'linux') {
    const probe = await execute('namespaces', { argv: ['true'], files: {}, stdin: '', exposeDirs: [], limits: DEFAULT_SANDBOX_LIMITS }).catch(
      () => null,
    );
    if (probe?.exitCode === 0) return 'namespaces';
  }
  const tools = await Promise.all([commandWorks('prlimit', ['--version']), commandWorks('timeout', ['--version'])]);
  return tools.every(Boolean) ? 'rlimits' : null;
}

let containmentProbe: Promise<Containment | null> | undefined;

/** Which containment runs will get here: 'namespaces', 'rlimits', or null (no sandbox: code is not run). */
export function sandboxContainment(): Promise<Containment | null> {
  containmentProbe ??= probeContainment();
  return containmentProbe;
}

/**
 * Runs a program in the best available sandbox, or in the given tier (e.g. to test 'rlimits' on a
 * machine that has namespaces). Throws when no sandbox is available.
 */
export async function runSandboxed(run: SandboxRun, containment?: Containment): Promise<SandboxOutcome> {
  const tier = containment ?? (await sandboxContainment());
  if (tier === null) throw new Error('no sandbox available: code verification needs Linux with util-linux (unshare or prlimit)');
  return execute(tier, run);
}
