/** Where a named namespace (`ip netns add NAME`) is mounted. */
export const namedNetns = (name: string): string => `/run/netns/${name}`;
