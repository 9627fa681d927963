import { registryNames } from '../answer.js';

/** Service names (VIP, or every healthy task in dnsrr mode), `tasks.<svc>`, task names and `_port._proto.<svc>` SRV. */
export const services = registryNames('services', 'services');
