import { spawn } from 'node:child_process';
import { closeSync, readFileSync, writeSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { serveAardvark } from '../aardvark/serve.js';

/**
 * `tsnet-dns --config DIR [-p PORT] [-f DOMAIN] run` (and `version`, `--version`, `help`): the
 * command line netavark gives aardvark-dns. `run` starts the server detached (its own session,
 * stdio on /dev/null, so netavark's pipes close) and returns once it listens on every gateway,
 * or prints why it could not and exits 1.
 */

const DAEMON_ENV = 'TSNET_AARDVARK_DAEMON';
const READY_FD = 3;

const version = (): string => (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Whether argv is aardvark's: a positional `run`/`version`/`help` (tsnet-dns's own options take none), or --version. */
export function isAardvarkCall(args: readonly string[]): boolean {
  return args.some((a, i) => {
    if (a === '--version' || a === '-V') return true;
    const prev = args[i - 1];
    const isValue = prev !== undefined && prev.startsWith('-') && !prev.includes('=') && prev !== '--no-watch';
    return !a.startsWith('-') && !isValue && ['run', 'version', 'help'].includes(a);
  });
}

const port = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port, 1-65535');
  return n;
};

interface Global {
  config?: string;
  port: number;
  filterSearchDomain: string;
}

async function daemon(g: Global & { config: string }): Promise<void> {
  const level = (process.env.RUST_LOG ?? 'info').toLowerCase();
  const logger = pino({ level: ['trace', 'debug', 'info', 'warn', 'error'].includes(level) ? level : 'info', base: { name: 'tsnet-dns' } });
  const tell = (line: string): void => {
    writeSync(READY_FD, `${line}\n`);
    closeSync(READY_FD);
  };
  try {
    await serveAardvark({
      dir: g.config,
      port: g.port,
      domain: g.filterSearchDomain.replace(/^\.+|\.+$/g, '').toLowerCase(),
      noProxy: process.env.AARDVARK_NO_PROXY !== undefined,
      logger,
      ready: () => tell('ready'),
    });
    process.exit(0);
  } catch (err) {
    tell(`error ${(err as Error).message}`);
    process.exit(1);
  }
}

/** Starts the daemon and waits for its word: "ready", or the error it stopped on. */
function launch(): Promise<number> {
  const child = spawn(process.execPath, process.argv.slice(1), {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, [DAEMON_ENV]: '1' },
  });
  return new Promise((resolve) => {
    let said = '';
    const pipe = child.stdio[READY_FD] as NodeJS.ReadableStream;
    pipe.on('data', (c: Buffer) => (said += c.toString()));
    pipe.on('end', () => {
      child.unref();
      if (said.startsWith('ready')) return resolve(0);
      process.stderr.write(`tsnet-dns: ${said.startsWith('error ') ? said.slice(6).trim() : 'the server exited before it was ready'}\n`);
      resolve(1);
    });
  });
}

export async function aardvarkMain(argv: readonly string[]): Promise<void> {
  const program = new Command('tsnet-dns')
    .description('netavark\'s aardvark-dns: names of the containers on each network of the config directory, on its gateways.')
    .option('-c, --config <dir>', 'the aardvark-dns config directory netavark writes')
    .option('-p, --port <port>', 'port to listen on', port, 5533)
    .option('-f, --filter-search-domain <domain>', 'the search domain stripped from names', '.dns.podman')
    .option('-V, --version', 'print the version')
    .showHelpAfterError();
  program.command('run').description('start the server (detached) and return once it listens').action(async () => {
    const g = program.opts<Global>();
    const config = g.config;
    if (config === undefined) return program.error('error: run needs --config DIR');
    if (process.env[DAEMON_ENV] === '1') return daemon({ ...g, config });
    process.exit(await launch());
  });
  program.command('version').description('print the version as JSON').action(() => {
    process.stdout.write(`${JSON.stringify({ version: version(), compatible: 'aardvark-dns 1.4' })}\n`);
  });
  program.on('option:version', () => {
    process.stdout.write(`tsnet-dns ${version()}\n`);
    process.exit(0);
  });
  await program.parseAsync(argv, { from: 'user' });
}
