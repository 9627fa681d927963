import type { Etcd3, IKeyValue, IWatchResponse } from 'etcd3';
import type { KeyValue, StoreEvent, Watch, WatchHandlers } from './store.js';

/** etcd's bytes as our KeyValue: the store's prefix cut off, the value parsed. */
export function toKeyValue(prefix: string, kv: IKeyValue): KeyValue {
  const key = kv.key.toString().slice(prefix.length);
  let value: unknown;
  try {
    value = JSON.parse(kv.value.toString());
  } catch (err) {
    throw new Error(`store/etcd: ${prefix}${key}: the value is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const lease = kv.lease !== undefined && kv.lease !== '0' ? { lease: kv.lease } : {};
  return { key, value, createRevision: Number(kv.create_revision), modRevision: Number(kv.mod_revision), ...lease };
}

/** One watch response's events, split by revision (a response may carry several). */
function byRevision(prefix: string, res: IWatchResponse): { revision: number; events: StoreEvent[] }[] {
  const out: { revision: number; events: StoreEvent[] }[] = [];
  for (const ev of res.events) {
    const revision = Number(ev.kv.mod_revision);
    const prev = ev.prev_kv === undefined || ev.prev_kv === null ? {} : { prev: toKeyValue(prefix, ev.prev_kv) };
    const event: StoreEvent = ev.type === 'Put' ? { type: 'put', kv: toKeyValue(prefix, ev.kv), ...prev } : { type: 'delete', key: ev.kv.key.toString().slice(prefix.length), revision, ...prev };
    const last = out.at(-1);
    if (last?.revision === revision) last.events.push(event);
    else out.push({ revision, events: [event] });
  }
  return out;
}

/**
 * A watch on `prefix` (the store's prefix included) from after `fromRevision`. etcd3's Watcher
 * reconnects by itself, but it resumes after the revision in the last response's header, which
 * on the `connected` response is the cluster's revision before any of the backlog was sent: a
 * drop between the two would skip the backlog. So the resume point is set here, after the last
 * revision actually delivered.
 */
export function watchEtcd(client: Etcd3, storePrefix: string, prefix: string, fromRevision: number, handlers: WatchHandlers): Watch {
  let last = fromRevision;
  let closed = false;
  const watcher = client.watch().prefix(storePrefix + prefix).startRevision(String(fromRevision + 1)).withPreviousKV().watcher();
  const resumeAfterLast = (): void => {
    watcher.request.start_revision = String(last + 1);
  };
  const end = (reason: string): void => {
    if (closed) return;
    closed = true;
    watcher.cancel().catch(() => {}); // the client may be closing: the watch goes with it
    handlers.reset(reason);
  };
  watcher.on('connected', resumeAfterLast);
  watcher.on('data', (res: IWatchResponse) => {
    if (closed) return;
    let changes: ReturnType<typeof byRevision>;
    try {
      changes = byRevision(storePrefix, res);
    } catch (err) {
      return end((err as Error).message);
    }
    // A revision at or below the last delivered would be a repeat after a reconnect.
    for (const c of changes) {
      if (c.revision <= last) continue;
      last = c.revision;
      handlers.events(c.events, c.revision);
      if (closed) return;
    }
    resumeAfterLast();
  });
  // etcd cancels a watch from a compacted revision ("Watcher canceled"): the caller lists again.
  watcher.on('error', (err: Error) => end(`store/etcd: watch on ${prefix} from ${last}: ${err.message || 'canceled'}`));
  return {
    close: () => {
      if (closed) return;
      closed = true;
      watcher.cancel().catch(() => {});
    },
  };
}
