/** What the firewall needs to know of one bridge network. */
export interface BridgeRules {
  network: string;
  bridge: string;
  subnet: string;
  /** No egress and no masquerade (`--internal`). */
  internal: boolean;
  /** Sandboxes on it may talk to each other (`--opt icc=false` turns that off). */
  icc: boolean;
  /** Host ends of the sandboxes' veths: the bridge ports that icc=false keeps apart. */
  ports: readonly string[];
}

/** A published port as the firewall needs it: where it arrives and where it goes. */
export interface PublishRule {
  hostIp: string;
  hostPort: number;
  protocol: 'tcp' | 'udp';
  /** Where it goes on `bridge`: one sandbox, or a service's serving tasks (chosen at random). */
  targets: readonly { ip: string; port: number }[];
  bridge: string;
  /** The sandbox or service it belongs to (the rule's comment). */
  owner: string;
}

function dnatRules(ports: readonly PublishRule[]): string[] {
  return ports.map((p) => {
    const to = p.hostIp === '0.0.0.0' ? 'fib daddr type local' : `ip daddr ${p.hostIp}`;
    const [one] = p.targets;
    const action =
      p.targets.length === 0
        ? 'reject'
        : p.targets.length === 1
          ? `dnat ip to ${one!.ip}:${one!.port}`
          : `dnat ip to numgen random mod ${p.targets.length} map { ${p.targets.map((x, i) => `${i} : ${x.ip} . ${x.port}`).join(', ')} }`;
    return `    ${to} ${p.protocol} dport ${p.hostPort} ${action} comment "${p.owner}"`;
  });
}

/**
 * The whole `inet tsnet` table for the current networks, as one `nft -f` file: the table is
 * declared, flushed and filled in the same transaction, so no packet sees it half-built
 * (kernel-notes.md: separate flush and add dropped connections, one file dropped none).
 * Outbound traffic from a bridge's subnet to anything but that bridge is masqueraded. The
 * forward chain isolates: a new connection into a bridge from anywhere but itself is dropped
 * (between networks, and from outside), internal networks get no egress. Its accepts cannot
 * override a drop in another table, and tsnet changes no chain it does not own.
 */
export function renderRuleset(table: string, networks: readonly BridgeRules[], ports: readonly PublishRule[] = []): string {
  const external = networks.filter((n) => !n.internal);
  // Order matters: replies, then traffic within one bridge, then new connections into a bridge
  // from anywhere else are dropped; what is left (egress) falls to the accept policy.
  const lines = [
    `table inet ${table} {}`,
    `flush table inet ${table}`,
    `table inet ${table} {`,
    // Published ports: DNAT for traffic from outside (prerouting) and from the host (output).
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...dnatRules(ports),
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    ...dnatRules(ports),
    '  }',
    // route_localnet (for the host's own 127.0.0.1 to reach published ports) would also let a
    // sandbox that routes 127.0.0.0/8 to its gateway reach the host's loopback-only services.
    '  chain loopback {',
    '    type filter hook prerouting priority raw; policy accept;',
    ...networks.map((n) => `    iifname "${n.bridge}" ip daddr 127.0.0.0/8 drop comment "${n.network}"`),
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...external.map((n) => `    ip saddr ${n.subnet} oifname != "${n.bridge}" masquerade comment "${n.network}"`),
    // Hairpin (a sandbox reaching its own network through a published port) and the host's
    // 127.0.0.1 need their source rewritten; outside clients keep theirs.
    ...networks.map((n) => `    oifname "${n.bridge}" ct status dnat ip saddr { ${n.subnet}, 127.0.0.0/8 } masquerade comment "${n.network}"`),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    ct state established,related accept',
    ...networks.map((n) => `    iifname "${n.bridge}" oifname "${n.bridge}" accept comment "${n.network}"`),
    // Published ports are the way in from outside and from other networks (not into internal ones).
    ...networks.filter((n) => !n.internal).map((n) => `    oifname "${n.bridge}" ct status dnat accept comment "${n.network}"`),
    ...networks.map((n) => `    oifname "${n.bridge}" ct state new drop comment "${n.network}"`),
    ...networks.filter((n) => n.internal).map((n) => `    iifname "${n.bridge}" drop comment "${n.network}"`),
    '  }',
    '}',
    // Frames between two ports of one bridge never reach the inet forward hook unless
    // br_netfilter says so; the bridge family sees them always.
    `table bridge ${table} {}`,
    `flush table bridge ${table}`,
    `table bridge ${table} {`,
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...networks
      .filter((n) => !n.icc && n.ports.length > 0)
      .map((n) => `    iifname { ${n.ports.join(', ')} } oifname { ${n.ports.join(', ')} } ether type { ip, ip6 } drop comment "${n.network}"`),
    '  }',
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** Removes the table (nothing left behind when the last network goes). */
export const renderDelete = (table: string): string =>
  `table inet ${table} {}\ndelete table inet ${table}\ntable bridge ${table} {}\ndelete table bridge ${table}\n`;
