/** What the firewall needs to know of one bridge network. */
export interface BridgeRules {
  network: string;
  bridge: string;
  subnet: string;
  /** No egress and no masquerade (`--internal`). */
  internal: boolean;
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
export function renderRuleset(table: string, networks: readonly BridgeRules[]): string {
  const external = networks.filter((n) => !n.internal);
  // Order matters: replies, then traffic within one bridge, then new connections into a bridge
  // from anywhere else are dropped; what is left (egress) falls to the accept policy.
  const lines = [
    `table inet ${table} {}`,
    `flush table inet ${table}`,
    `table inet ${table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...external.map((n) => `    ip saddr ${n.subnet} oifname != "${n.bridge}" masquerade comment "${n.network}"`),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    ct state established,related accept',
    ...networks.map((n) => `    iifname "${n.bridge}" oifname "${n.bridge}" accept comment "${n.network}"`),
    ...networks.map((n) => `    oifname "${n.bridge}" ct state new drop comment "${n.network}"`),
    ...networks.filter((n) => n.internal).map((n) => `    iifname "${n.bridge}" drop comment "${n.network}"`),
    '  }',
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** Removes the table (nothing left behind when the last network goes). */
export const renderDelete = (table: string): string => `table inet ${table} {}\ndelete table inet ${table}\n`;
