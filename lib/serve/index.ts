export { ModelServer, type ServeOptions } from './server.js';
export { Sampler, type Sample, type SampleRequest, type SamplerOptions } from './sampler.js';
export { RequestError, type Limits } from './protocol.js';
