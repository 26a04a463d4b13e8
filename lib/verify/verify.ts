// One entry point for every kind of verification, used in-process and by the pool's workers.
import { verifyCode, type CodeVerifierOptions } from './code/verify.js';
import { verifyControlled } from './controlled.js';
import { verifyMath } from './math/verify.js';
import { errorResult, type VerifyRequest, type VerifyResult } from './types.js';

export interface VerifyOptions {
  code?: CodeVerifierOptions;
}

/** Judges one request; never throws: a verifier that throws yields an 'error' result. */
export async function verify(request: VerifyRequest, options: VerifyOptions = {}): Promise<VerifyResult> {
  try {
    switch (request.kind) {
      case 'math':
      case 'controlled': {
        if (typeof request.groundTruth !== 'string') return errorResult(`a ${request.kind} request needs groundTruth`);
        const judge = request.kind === 'math' ? verifyMath : verifyControlled;
        return judge(request.response, request.groundTruth);
      }
      case 'code':
        if (request.tests === undefined) return errorResult('a code request needs tests');
        return await verifyCode(request.response, request.tests, options.code);
      default:
        return errorResult(`unknown verification kind ${JSON.stringify((request as { kind: unknown }).kind)}`);
    }
  } catch (error) {
    return errorResult(`verifier failed: ${(error as Error)?.message ?? String(error)}`);
  }
}
