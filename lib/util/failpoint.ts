// Failpoints: named places where a test can make the process die as a crash would (SIGKILL, no cleanup), to check
// that what it was writing is never left half-done. PREFIX_RL_FAILPOINT=name or name@step arms one; unset (always,
// outside tests) a failpoint does nothing.
export function failpoint(name: string, step?: number): void {
  const armed = process.env.PREFIX_RL_FAILPOINT;
  if (armed && (armed === name || (step !== undefined && armed === `${name}@${step}`))) process.kill(process.pid, 'SIGKILL');
}
