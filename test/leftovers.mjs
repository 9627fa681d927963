// The suite's last test, run by test/run.mjs once ava has exited (ava runs files concurrently, so
// no test file can be last): nothing this run made may be left. Other runs share the machine,
// so only what is provably this run's counts: kernel objects whose name carries a tag the
// helpers recorded in the run's ledger (test/helpers/ledger.ts), temp dirs whose name carries one
// (a long one: short device tags could match a random mkdtemp suffix), and processes carrying
// the run's id in their environment (everything the suite starts inherits it).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const json = async (cmd, args) => JSON.parse((await run(cmd, args)).stdout || '[]');

/** Kernel objects and processes of this run still there, each with the command that removes it. */
async function find(runId, ledger) {
  const ours = (name) => ledger.some(({ tag }) => name.includes(tag));
  const whose = (name) => ledger.find(({ tag }) => name.includes(tag))?.by;
  const found = [];
  for (const { name } of await json('ip', ['-j', 'netns', 'list'])) {
    if (ours(name)) found.push({ what: `netns ${name} (${whose(name)})`, remove: () => run('ip', ['netns', 'del', name]) });
  }
  for (const { ifname } of await json('ip', ['-j', 'link', 'show'])) {
    if (ours(ifname)) found.push({ what: `link ${ifname} (${whose(ifname)})`, remove: () => run('ip', ['link', 'del', ifname]) });
  }
  for (const entry of (await json('nft', ['-j', 'list', 'tables'])).nftables ?? []) {
    const table = entry.table;
    if (table !== undefined && ours(table.name)) found.push({ what: `nft table ${table.family} ${table.name} (${whose(table.name)})`, remove: () => run('nft', ['delete', 'table', table.family, table.name]) });
  }
  for (const dir of (existsSync('/etc/netns') ? readdirSync('/etc/netns', { withFileTypes: true }) : []).filter((d) => d.isDirectory() && ours(d.name))) {
    found.push({ what: `/etc/netns/${dir.name} (${whose(dir.name)})`, remove: async () => rmSync(`/etc/netns/${dir.name}`, { recursive: true, force: true }) });
  }
  // wireguard-go's UAPI sockets: one directory for every namespace, so a tagged name is this run's.
  const uapi = '/var/run/wireguard';
  for (const name of (existsSync(uapi) ? readdirSync(uapi) : []).filter((n) => n.endsWith('.sock') && ours(n))) {
    found.push({ what: `${uapi}/${name} (${whose(name)})`, remove: async () => rmSync(join(uapi, name), { force: true }) });
  }
  // Temp dirs named with a tag (etcd's data, test/helpers/etcd.ts).
  const dirTagged = (name) => name.startsWith('tsnet-') && ledger.some(({ tag }) => tag.length >= 12 && name.includes(tag));
  for (const name of readdirSync(tmpdir()).filter(dirTagged)) {
    found.push({ what: `${join(tmpdir(), name)} (${whose(name)})`, remove: async () => rmSync(join(tmpdir(), name), { recursive: true, force: true }) });
  }
  const marker = `TSNET_TEST_RUN=${runId}`;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    let env;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (!env.includes(marker)) continue;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    found.push({ what: `process ${pid} (${cmd.slice(0, 120)})`, remove: async () => process.kill(Number(pid), 'SIGKILL') });
  }
  return found;
}

/**
 * What the run left behind, polled for ten seconds (a SIGKILLed process takes a moment to go);
 * whatever is still there is removed, since it is this run's, and returned.
 */
export async function leftovers(runId, runDir) {
  let ledger = [];
  try {
    ledger = readFileSync(join(runDir, 'owned'), 'utf8').split('\n').filter(Boolean).map((l) => {
      const [tag, by] = l.split('\t');
      return { tag, by };
    });
  } catch {
    // no helper recorded anything
  }
  // A deleted namespace is freed (and its veths with it) by the kernel a little later.
  let found = await find(runId, ledger);
  for (let i = 0; i < 100 && found.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    found = await find(runId, ledger);
  }
  // Processes first: a namespace with a process in it outlives `ip netns del`.
  const processesFirst = [...found.filter((f) => f.what.startsWith('process')), ...found.filter((f) => !f.what.startsWith('process'))];
  for (const f of processesFirst) await f.remove().catch(() => {});
  return found.map((f) => f.what);
}
