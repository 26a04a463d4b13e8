// The CUDA runtime around the compute: synchronising a device (kernels run asynchronously, so timing needs it) and the
// caching allocator's memory counters. Each throws ERR_CUDA_UNAVAILABLE without a CUDA build or a GPU; `device`
// defaults to the current GPU.
import { addon, type CudaMemory } from '../native/addon.js';
import { withCancel } from './cancel.js';

/** Resolves once every kernel queued on `device` has finished (on the compute thread): for timing GPU work. */
export function cudaSynchronize(device?: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  return withCancel(options.signal, (token) => addon().cudaSynchronize(device, token));
}

/** The caching allocator's memory counters of `device`. */
export function cudaMemory(device?: string): CudaMemory {
  return addon().cudaMemory(device);
}

/** Starts a new peak for cudaMemory().peakAllocatedBytes. */
export function cudaResetPeakMemory(device?: string): void {
  addon().cudaResetPeakMemory(device);
}

/** Makes cuda:index what "cuda" without an index means (in every later call), and the compute thread's current device. */
export function cudaSetDevice(index: number, options: { signal?: AbortSignal } = {}): Promise<void> {
  return withCancel(options.signal, (token) => addon().cudaSetDevice(index, token));
}

/** Returns the allocator's cached, unused blocks to the driver. */
export function cudaEmptyCache(): void {
  addon().cudaEmptyCache();
}
