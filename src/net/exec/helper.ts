// The tool runner's helper process (see tool-runner.ts): runs each command it is sent on stdin
// (one JSON request per line) and writes back one JSON line per command when it has ended. It
// exits when its stdin closes, so it never outlives the daemon that started it.
import { createInterface } from 'node:readline';
import { spawnDirect, type ToolRequest } from './tool-runner.js';

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const { id, ...req } = JSON.parse(line) as ToolRequest;
    void spawnDirect(req).then((outcome) => process.stdout.write(`${JSON.stringify({ id, ...outcome })}\n`));
  })
  .on('close', () => process.exit(0));
