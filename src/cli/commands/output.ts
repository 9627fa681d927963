/** Prints rows as a left-aligned table with a header, like docker's listings. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [header, ...rows]) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('') + '\n');
}

export const printJson = (value: unknown): void => void process.stdout.write(JSON.stringify(value, null, 2) + '\n');

/** Collects a repeatable option into a list. */
export const many = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Parses repeatable KEY=VALUE options into an object. */
export function keyValues(list: string[] | undefined, what: string): Record<string, string> | undefined {
  if (list === undefined) return undefined;
  return Object.fromEntries(
    list.map((kv) => {
      const i = kv.indexOf('=');
      if (i < 1) throw new Error(`${what} ${JSON.stringify(kv)}: expected KEY=VALUE`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
}
