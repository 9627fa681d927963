import { registryNames } from '../answer.js';

/** Container names, hostnames, aliases and short ids on the asker's networks, each also as `name.network`. */
export const local = registryNames('local', 'endpoints');
