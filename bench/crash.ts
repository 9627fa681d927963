// `npm run bench:crash [RUNS] [SEED]` (root): RUNS crash runs (default 50), each a daemon killed
// with SIGKILL at a random point of a stream of API changes and started again (bench/crash-run.ts).
// Prints every failure with its seed (replay one with RUNS=1 SEED=that seed) and the restart times.
import { crashRun } from './crash-run.js';

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 50);
  const base = Number(process.argv[3] ?? Date.now() % 1_000_000);
  const restarts: number[] = [];
  let failed = 0;
  for (let i = 0; i < runs; i++) {
    const r = await crashRun(base + i);
    restarts.push(r.restartMs);
    if (r.failures.length > 0) failed++;
    const status = r.failures.length === 0 ? 'ok' : `FAIL\n    ${r.failures.join('\n    ')}`;
    process.stdout.write(`run ${i + 1}/${runs} seed ${r.seed}: ${r.acked} acknowledged, killed during ${r.inFlight ?? 'nothing'}, restart ${r.restartMs} ms: ${status}\n`);
  }
  const sorted = [...restarts].sort((a, b) => a - b);
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
  process.stdout.write(`\n${runs} runs, ${failed} failed; restart ms p50 ${at(0.5)}, p95 ${at(0.95)}, max ${sorted.at(-1)}\n`);
  process.exitCode = failed === 0 ? 0 : 1;
}

void main();
