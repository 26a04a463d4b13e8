// Captures what CLI commands write to stdout, for tests that call main() in-process.
import { jest } from '@jest/globals';

/** Replaces process.stdout.write for the test; returns the chunks written. Undo with jest.restoreAllMocks(). */
export function captureStdout(): string[] {
  const chunks: string[] = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  return chunks;
}
