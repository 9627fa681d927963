import { checkIfname } from '../net/link/names.js';
import { notNetns } from '../netns/is-netns.js';
import { show } from '../registry/validate.js';
import { Code, CniError } from './errors.js';

/** What the runtime asks for, read from the CNI_* environment (SPEC.md "Parameters"). */
export interface Invocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  /** Empty for VERSION only. */
  containerId: string;
  /** The namespace's path; absent for VERSION, and for a DEL whose runtime no longer has it. */
  netns?: string;
  /** Empty for VERSION only. */
  ifname: string;
  /** CNI_ARGS, `K=V;K=V`. */
  args: ReadonlyMap<string, string>;
}

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION'] as const;

/** The spec's container id: an alphanumeric, then alphanumerics, '_', '.', '-'. */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,1023}$/;

const invalid = (message: string): CniError => new CniError(Code.invalidEnv, message);

/** CNI_ARGS: `;`-separated KEY=VALUE pairs; an empty string is none. */
export function parseCniArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const i = pair.indexOf('=');
    if (i < 1) throw invalid(`CNI_ARGS: ${show(pair)} is not KEY=VALUE`);
    args.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return args;
}

/**
 * The invocation, every variable the command needs present and well-formed (code 4 naming the
 * variable otherwise). CNI_PATH is not read: tsnet-cni delegates to no other plugin.
 */
export function parseEnv(env: Readonly<Record<string, string | undefined>>): Invocation {
  const command = env.CNI_COMMAND;
  if (command === undefined || command === '') throw invalid('CNI_COMMAND is not set (ADD, DEL, CHECK or VERSION)');
  if (!(COMMANDS as readonly string[]).includes(command)) throw invalid(`CNI_COMMAND ${show(command)} is not one tsnet-cni knows (${COMMANDS.join(', ')})`);
  const cmd = command as Invocation['command'];
  const args = parseCniArgs(env.CNI_ARGS ?? '');
  if (cmd === 'VERSION') return { command: cmd, containerId: '', ifname: '', args };
  const containerId = env.CNI_CONTAINERID ?? '';
  if (containerId === '') throw invalid(`CNI_CONTAINERID is not set (${cmd} needs it)`);
  if (!CONTAINER_ID.test(containerId)) throw invalid(`CNI_CONTAINERID ${show(containerId)} is not a container id (an alphanumeric, then alphanumerics, '_', '.', '-')`);
  const ifname = env.CNI_IFNAME ?? '';
  if (ifname === '') throw invalid(`CNI_IFNAME is not set (${cmd} needs it)`);
  try {
    checkIfname(ifname, 'CNI_IFNAME');
  } catch (err) {
    throw invalid((err as Error).message);
  }
  if (ifname === 'lo') throw invalid("CNI_IFNAME lo is the container's loopback");
  const netns = env.CNI_NETNS === '' ? undefined : env.CNI_NETNS;
  // DEL must work when the runtime has lost the namespace already: there it is neither needed nor checked.
  if (netns === undefined && cmd !== 'DEL') throw invalid(`CNI_NETNS is not set (${cmd} needs it)`);
  const why = netns === undefined || cmd === 'DEL' ? undefined : notNetns(netns);
  if (why !== undefined) throw invalid(`CNI_NETNS ${show(netns)} ${why}`);
  return { command: cmd, containerId, ifname, args, ...(netns === undefined ? {} : { netns }) };
}
