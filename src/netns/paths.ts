/** Where named namespaces (`ip netns add NAME`) are mounted. */
export const NETNS_DIR = '/run/netns';

export const namedNetns = (name: string): string => `${NETNS_DIR}/${name}`;
