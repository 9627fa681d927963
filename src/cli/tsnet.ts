import { Command } from 'commander';
import { ControlError, DEFAULT_SOCKET } from '../control/client.js';
import { daemonCommand } from './commands/daemon.js';
import { networkCommand } from './commands/network.js';
import { nodeCommand } from './commands/node.js';
import { sandboxCommand } from './commands/sandbox.js';
import { serviceCommand } from './commands/service.js';

const program = new Command('tsnet')
  .description('container networks with a DNS resolver at 127.0.0.11 in every sandbox')
  .option('--socket <path>', 'the daemon\'s control socket', DEFAULT_SOCKET)
  .showHelpAfterError();

daemonCommand(program);
networkCommand(program);
nodeCommand(program);
sandboxCommand(program);
serviceCommand(program);

program.parseAsync().catch((err: Error) => {
  process.stderr.write(`tsnet: ${err instanceof ControlError ? `Error response from daemon: ${err.message}` : err.message}\n`);
  process.exit(1);
});
