import { systemTool } from '../tools.js';
import { toolOutput } from '../exec/tool-runner.js';
import { nftApply } from '../nft/apply.js';
import { ifname, join, nft, port, render, table, type Token } from '../nft/values.js';

/**
 * The encrypted overlays' guard in the host's namespace, Docker's `enc-in` with the WireGuard
 * interface in place of `meta secpath`: VXLAN of an encrypted VNI is taken in only when it came
 * out of the tunnel, and sent only into it. Without it a host on the underlay could inject
 * cleartext frames into an encrypted network (measured: delivered without the guard, dropped
 * with it), and a missing tunnel route could send them out in clear. `@th,96,24` is the VNI
 * (8 bytes of UDP header, then 4 of VXLAN flags); nft 1.0.6 wants `typeof` for it.
 */

export interface GuardOptions {
  /** The table (family inet), one per daemon. */
  table: string;
  /** This node's WireGuard interface: the only way in or out for an encrypted VNI. */
  wgIfname: string;
  /** The VXLAN UDP port. */
  vxlanPort: number;
  /** The encrypted networks' VNIs. */
  vnis: readonly number[];
}

const vni = (v: number): Token => {
  if (!Number.isInteger(v) || v < 1 || v >= 2 ** 24) throw new Error(`wireguard/guard: VNI ${v} is not a 24-bit VNI`);
  return nft`${v}`;
};

/** The table, replaced whole in one transaction (made empty first, so the delete always finds it). */
export function renderGuard({ table: name, wgIfname, vxlanPort, vnis }: GuardOptions): string {
  const t = table(name);
  const wgIf = ifname(wgIfname);
  const match = nft`udp dport ${port(vxlanPort)} @th,96,24 @encrypted_vnis counter drop`;
  return render([
    nft`table inet ${t} {}`,
    nft`delete table inet ${t}`,
    nft`table inet ${t} {`,
    nft`  set encrypted_vnis { typeof @th,96,24; elements = { ${join(vnis.map(vni), ', ')} }; }`,
    nft`  chain enc_in { type filter hook input priority raw; policy accept;`,
    nft`    iifname != ${wgIf} ${match}`,
    nft`  }`,
    nft`  chain enc_out { type filter hook output priority raw; policy accept;`,
    nft`    oifname != ${wgIf} ${match}`,
    nft`  }`,
    nft`}`,
  ]);
}

/** Applies the guard for `vnis`, or removes the table when there are none. */
export async function applyGuard(options: GuardOptions): Promise<void> {
  if (options.vnis.length > 0) return nftApply(renderGuard(options));
  const tables = await toolOutput(systemTool('nft'), ['list', 'tables']);
  if (tables.includes(`table inet ${options.table}\n`)) await nftApply(render([nft`delete table inet ${table(options.table)}`]));
}

/** Packets the guard dropped (in, out), for `network inspect`; zeros when there is no table. */
export async function guardDrops(name: string): Promise<{ in: number; out: number }> {
  const text = await toolOutput(systemTool('nft'), ['list', 'table', 'inet', table(name).text]).catch(() => '');
  const counts = [...text.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
  return { in: counts[0] ?? 0, out: counts[1] ?? 0 };
}
