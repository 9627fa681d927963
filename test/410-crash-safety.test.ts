import test from 'ava';
import { randomInt } from 'node:crypto';
import { crashRun, type CrashStore } from '../bench/crash-run.js';
import { EtcdStore } from '../src/store/etcd-store.js';
import { startEtcd } from './helpers/etcd.js';

// The CI share of `npm run bench:crash`: runs of a daemon killed with SIGKILL at a random point
// of a stream of changes (networks, sandboxes with published ports, services with replicas),
// started again and checked (state, kernel, leftovers), on the embedded store and on etcd (an
// etcd of each run's own). A failure names its seed.
const runs: { store: 'file' | 'etcd'; n: number }[] = [
  ...[1, 2, 3, 4, 5].map((n) => ({ store: 'file' as const, n })),
  ...[1, 2, 3].map((n) => ({ store: 'etcd' as const, n })),
];
for (const { store, n } of runs) {
  test.serial(`crash run ${n} on the ${store} store: after kill -9 and a restart the state is the last acknowledged change (or the one in flight), the kernel matches it and nothing leaks`, async (t) => {
    t.timeout(120_000);
    let cluster: CrashStore | undefined;
    if (store === 'etcd') {
      const etcd = await startEtcd(t);
      cluster = { url: `etcd://${etcd.endpoints.map((e) => new URL(e).host).join(',')}`, open: () => new EtcdStore({ hosts: etcd.endpoints }) };
    }
    const r = await crashRun(randomInt(1, 1_000_000), cluster);
    t.log(`seed ${r.seed}: ${r.acked} acknowledged, killed during ${r.inFlight ?? 'nothing'}, restart ${r.restartMs} ms`);
    t.deepEqual(r.failures, [], `seed ${r.seed}`);
  });
}
