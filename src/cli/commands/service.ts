import { InvalidArgumentError, type Command } from 'commander';
import { call } from '../../control/client.js';
import { many, printJson, printTable } from './output.js';

interface ServiceView {
  Id: string;
  Name: string;
  Network: string;
  EndpointMode: string;
  VirtualIP: string | null;
  Tasks: { Id: string; Address: string; Node: string; Healthy: boolean; Draining: boolean; Weight: number }[];
}

const bool = (v: string): boolean => {
  if (v !== 'true' && v !== 'false') throw new Error(`expected true or false, not ${JSON.stringify(v)}`);
  return v === 'true';
};

/** Milliseconds from 100 (each check forks; closer ones would never let one finish) upwards. */
const interval = (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 100) throw new InvalidArgumentError('milliseconds, at least 100');
  return n;
};

export function serviceCommand(program: Command): void {
  const socket = (): string => program.opts<{ socket: string }>().socket;
  const svc = program.command('service').description('services: a name with a VIP (or DNS round robin) over tasks');
  const path = (name: string, rest = ''): string => `/services/${encodeURIComponent(name)}${rest}`;

  svc
    .command('create')
    .requiredOption('--name <name>', 'service name')
    .requiredOption('--network <net>', 'the network it lives on')
    .option('--endpoint-mode <mode>', 'vip or dnsrr', 'vip')
    .option('--port <name:proto:port>', 'a named port (SRV _name._proto.service); repeatable', many)
    .option('--publish <spec>', 'HOSTPORT:TARGET[/udp], or mode=ingress|host,published=P,target=T[,protocol=udp]: a host port balanced over the serving tasks (on an overlay: every node through the routing mesh, or only nodes with a task in mode=host); repeatable', many)
    .option('--replicas <n>', 'replicas tsnet runs itself, each a sandbox running the command after --', (v) => Number(v))
    .option('--health-cmd <cmd>', 'run in each replica; exit 0 is healthy (unhealthy replicas leave DNS and the VIP)')
    .option('--health-tcp <port>', 'or: healthy while the replica accepts TCP on this port', (v) => Number(v))
    .option('--health-interval <ms>', 'milliseconds from the end of one health check round to the next (default 1000, at least 100)', interval)
    .argument('[command...]', 'the replicas\' command (after --)')
    .action(async (command: string[], o: { name: string; network: string; endpointMode: string; port?: string[]; publish?: string[]; replicas?: number; healthCmd?: string; healthTcp?: number; healthInterval?: number }) => {
      const replicas = o.replicas === undefined ? undefined : { Count: o.replicas, Command: command.join(' '), HealthCmd: o.healthCmd, HealthTcp: o.healthTcp, HealthInterval: o.healthInterval };
      const s = await call<ServiceView>(socket(), 'POST', '/services/create', { Name: o.name, Network: o.network, EndpointMode: o.endpointMode, Ports: o.port, Publish: o.publish, Replicas: replicas });
      process.stdout.write(`${s.Id}${s.VirtualIP === null ? '' : ` ${s.VirtualIP}`}\n`);
    });

  svc
    .command('ls')
    .option('--format <format>', '"json" for JSON')
    .action(async (o: { format?: string }) => {
      const list = await call<ServiceView[]>(socket(), 'GET', '/services');
      if (o.format === 'json') return printJson(list);
      const nodes = (s: ServiceView): string => [...new Set(s.Tasks.map((t) => t.Node))].sort().join(',') || '-';
      printTable(['NAME', 'NETWORK', 'MODE', 'VIP', 'TASKS', 'NODES'], list.map((s) => [s.Name, s.Network, s.EndpointMode, s.VirtualIP ?? '-', `${s.Tasks.filter((t) => t.Healthy && !t.Draining && t.Weight > 0).length}/${s.Tasks.length}`, nodes(s)]));
    });

  svc.command('scale <service> <replicas>').action(async (service: string, n: string) => {
    await call(socket(), 'POST', path(service, '/scale'), { Replicas: Number(n) });
  });

  svc.command('inspect <service...>').action(async (refs: string[]) => printJson(await Promise.all(refs.map((r) => call(socket(), 'GET', path(r))))));
  svc.command('rm <service...>').action(async (refs: string[]) => {
    for (const r of refs) await call(socket(), 'DELETE', path(r));
  });

  const task = svc.command('task').description("a service's tasks, for runtimes that run them");
  task
    .command('add <service>')
    .option('--sandbox <name>', 'the sandbox that runs it (its address on the service network)')
    .option('--ip <ip>', 'or the address of a task tsnet does not run')
    .option('--weight <n>', 'share of new connections and DNS order', (v) => Number(v))
    .action(async (service: string, o: { sandbox?: string; ip?: string; weight?: number }) => {
      const s = await call<ServiceView>(socket(), 'POST', path(service, '/tasks'), { Sandbox: o.sandbox, Address: o.ip, Weight: o.weight });
      process.stdout.write(`${s.Tasks.at(-1)!.Id}\n`);
    });
  task
    .command('health <service> <task>')
    .option('--healthy <bool>', 'true or false', bool)
    .option('--draining <bool>', 'true or false', bool)
    .option('--weight <n>', 'new weight (0 drains)', (v) => Number(v))
    .action(async (service: string, id: string, o: { healthy?: boolean; draining?: boolean; weight?: number }) => {
      await call(socket(), 'POST', path(service, `/tasks/${encodeURIComponent(id)}`), { Healthy: o.healthy, Draining: o.draining, Weight: o.weight });
    });
  task.command('rm <service> <task>').action(async (service: string, id: string) => {
    await call(socket(), 'DELETE', path(service, `/tasks/${encodeURIComponent(id)}`));
  });
}
