import net from 'node:net';

export type ProxyMode = 'up' | 'refuse' | 'blackhole';

export interface TcpProxy {
  port: number;
  readonly mode: ProxyMode;
  /**
   * up: forwards. refuse: resets every open connection and refuses new ones (a database that
   * went away). blackhole: holds every byte either way and accepts new connections that go
   * nowhere (a network partition: nothing fails, it hangs); when it heals, what was held flows.
   */
  set(mode: ProxyMode): void;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream?: net.Socket;
  toUpstream: Buffer[];
  toClient: Buffer[];
}

/** A TCP proxy in front of a real server, for cutting it off the way a network does. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'up';

  const drop = (p: Pair) => {
    pairs.delete(p);
    p.client.destroy();
    p.upstream?.destroy();
  };

  function flush(p: Pair) {
    if (mode !== 'up' || !p.upstream) return;
    for (const b of p.toUpstream.splice(0)) p.upstream.write(b);
    for (const b of p.toClient.splice(0)) p.client.write(b);
  }

  function connectUpstream(p: Pair) {
    const upstream = net.connect(target.port, target.host);
    p.upstream = upstream;
    upstream.on('error', () => drop(p));
    upstream.on('close', () => drop(p));
    upstream.on('data', (d) => {
      p.toClient.push(d);
      flush(p);
    });
    upstream.on('connect', () => flush(p));
  }

  const server = net.createServer((client) => {
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    const p: Pair = { client, toUpstream: [], toClient: [] };
    pairs.add(p);
    client.on('error', () => drop(p));
    client.on('close', () => drop(p));
    client.on('data', (d) => {
      p.toUpstream.push(d);
      flush(p);
    });
    // In a blackhole the connection reaches the server only when the partition heals.
    if (mode === 'up') connectUpstream(p);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    get mode() {
      return mode;
    },
    set(next) {
      mode = next;
      for (const p of [...pairs]) {
        if (next === 'refuse') drop(p);
        else if (next === 'up') {
          if (!p.upstream) connectUpstream(p);
          else flush(p);
        }
      }
    },
    async close() {
      for (const p of [...pairs]) drop(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
