import type { CommandModule } from 'yargs';
import { environmentReport } from '../../native/runtime.js';

interface EnvArgs {
  json: boolean;
}

/** `prefix-rl env`: what this installation runs on (Node, the addon build, libtorch, CUDA, threads). */
export const envCommand: CommandModule<object, EnvArgs> = {
  command: 'env',
  describe: 'Print Node, addon build, libtorch version, CUDA availability and thread settings',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }),
  handler: (args) => {
    const report = environmentReport();
    if (args.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return;
    }
    const { build, runtime } = report;
    const lines = [
      `node          ${report.node} (${report.platform})`,
      `libtorch      ${build.torchVersion} ${runtime.cudaAvailable ? 'CUDA' : 'CPU'}  (${report.addon.libtorch?.libDir ?? build.torchLibDir})`,
      `binary        ${report.addon.binary}`,
      `              ${report.addon.kind}: ${report.addon.reason}`,
      ...report.addon.passedOver.map((line) => `              passed over ${line}`),
      `addon         ${build.buildType}, N-API ${build.napiVersion}, gcc ${build.compiler}, CUDA kernels ${build.cudaKernels ? 'built in' : build.cudaCompiled ? 'compiled (link check only)' : 'not built'}`,
      `cuda          ${runtime.cudaAvailable ? `${runtime.cudaDeviceCount} device(s)` : 'not available'}`,
      ...runtime.cudaDevices.map(
        (gpu) =>
          `  cuda:${gpu.index}      ${gpu.name}, capability ${gpu.capability}, ${(gpu.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB` +
          `${gpu.freeMemoryBytes === undefined ? '' : ` (${(gpu.freeMemoryBytes / 2 ** 30).toFixed(1)} GiB free)`}, fused kernels ${gpu.fusedKernels ? 'yes' : 'no (ATen ops)'}`,
      ),
      `distributed   ${build.distributedBackends.length > 0 ? `c10d ${build.distributedBackends.join(', ')}` : 'not built (no Gloo headers at build time)'}`,
      `threads       ${runtime.numThreads} intra-op (hardware: ${runtime.hardwareConcurrency})`,
      `live tensors  ${runtime.liveTensors}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  },
};
