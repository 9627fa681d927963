import test from 'ava';
import { randomInt } from 'node:crypto';
import { crashRun } from '../bench/crash-run.js';

// The CI share of `npm run bench:crash`: five runs, each a daemon killed with SIGKILL at a random
// point of a stream of changes (networks, sandboxes with published ports, services with
// replicas), started again and checked (state, kernel, leftovers). A failure names its seed.
for (let i = 1; i <= 5; i++) {
  test.serial(`crash run ${i}: after kill -9 and a restart the state is the last acknowledged change (or the one in flight), the kernel matches it and nothing leaks`, async (t) => {
    t.timeout(120_000);
    const r = await crashRun(randomInt(1, 1_000_000));
    t.log(`seed ${r.seed}: ${r.acked} acknowledged, killed during ${r.inFlight ?? 'nothing'}, restart ${r.restartMs} ms`);
    t.deepEqual(r.failures, [], `seed ${r.seed}`);
  });
}
