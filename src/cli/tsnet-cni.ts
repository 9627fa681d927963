import { readFileSync } from 'node:fs';
import { add, check, del, version } from '../cni/commands.js';
import { decode, parseConfig, SUPPORTED_VERSIONS } from '../cni/config.js';
import { parseEnv } from '../cni/env.js';
import { Code, CniError } from '../cni/errors.js';
import type { CniErrorResult } from '../cni/types.js';

/**
 * tsnet-cni: a CNI plugin (SPEC.md 1.0) that puts a runtime's namespaces on tsnet networks by
 * asking the tsnet daemon. Reads CNI_* from the environment and the network configuration on
 * stdin; prints the result, or the error result, on stdout; logs only on stderr.
 */

/** A daemon that neither answers nor refuses within this is reported as "try again later". */
const DAEMON_DEADLINE_MS = 60_000;

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    throw new CniError(Code.io, `reading the network configuration from stdin: ${(err as Error).message}`);
  }
}

/** The error result on stdout, in the configuration's cniVersion when tsnet-cni speaks it; exit 1. */
function fail(err: unknown, cniVersion: string): never {
  const e = err instanceof CniError ? err : new CniError(Code.refused, `tsnet-cni: ${(err as Error).message}`);
  const out: CniErrorResult = { cniVersion, code: e.code, msg: e.message, ...(e.details === undefined ? {} : { details: e.details }) };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(1);
}

async function main(): Promise<never> {
  let cniVersion = '1.0.0';
  setTimeout(() => fail(new CniError(Code.tryAgainLater, `the tsnet daemon did not answer within ${DAEMON_DEADLINE_MS / 1000} s`), cniVersion), DAEMON_DEADLINE_MS).unref();
  try {
    const inv = parseEnv(process.env);
    const text = readStdin();
    let result: unknown;
    if (inv.command === 'VERSION') result = version();
    else {
      const json = decode(text);
      if (typeof json.cniVersion === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(json.cniVersion)) cniVersion = json.cniVersion;
      const conf = parseConfig(json, inv.command);
      if (inv.command === 'ADD') result = await add(inv, conf);
      else await (inv.command === 'DEL' ? del(inv, conf) : check(inv, conf));
    }
    if (result !== undefined) process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(0);
  } catch (err) {
    fail(err, cniVersion);
  }
}

void main();
