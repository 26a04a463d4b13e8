export { Tensor, liveTensors, type TensorOptions, type AsyncOptions, type DType, type DeviceName } from './tensor.js';
export { tidy } from './scope.js';
export { abortError } from './cancel.js';
export { cudaEmptyCache, cudaMemory, cudaResetPeakMemory, cudaSetDevice, cudaSynchronize } from './cuda.js';
