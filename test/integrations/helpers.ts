import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { loadConfig, type Config } from '../../src/config';
import type { Db } from '../../src/db';
import { createLogger } from '../../src/log';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

export type Responder = (req: RecordedRequest) => { status: number; body?: unknown } | 'hang';

/**
 * A real HTTP server on a free local port that records every request and answers as told,
 * standing in for a lab, community, transport system, webhook or our own API.
 */
export async function startRecordingServer(responder: Responder = () => ({ status: 200, body: {} })) {
  const requests: RecordedRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let respond = responder;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const rec: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: raw ? (JSON.parse(raw) as unknown) : undefined,
      };
      requests.push(rec);
      for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve();
      const answer = respond(rec);
      if (answer === 'hang') return; // never answer: the client's timeout must fire
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setResponder(r: Responder) {
      respond = r;
    },
    /** Resolves once `n` requests in total have arrived, or rejects after `timeoutMs`. */
    waitFor(n: number, timeoutMs = 10_000): Promise<void> {
      if (requests.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`expected ${n} requests, got ${requests.length}`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const testConfig = (env: Record<string, string> = {}): Config =>
  loadConfig({ LOG_LEVEL: 'silent', HTTP_TIMEOUT_MS: '2000', ...env });

export const silentLog = createLogger('silent');

export async function rowCount(db: Db, table: string): Promise<number> {
  const { sql } = await import('drizzle-orm');
  const { rowsOf } = await import('../../src/integrations/hotel');
  const rows = rowsOf<{ n: number }>(await db.execute(sql.raw(`select count(*)::int as n from ${table}`)));
  return Number(rows[0]?.n ?? 0);
}

/** Rooms for a quick hotel: `floors` floors of `perFloor` rooms, the first `accessible` rooms on floor 1 accessible. */
export function roomsFor(floors: number, perFloor: number, accessible = 0) {
  const rooms: { roomNo: string; floor: number; accessible: boolean }[] = [];
  for (let f = 1; f <= floors; f++) {
    for (let i = 1; i <= perFloor; i++) {
      rooms.push({ roomNo: `${f}${String(i).padStart(2, '0')}`, floor: f, accessible: f === 1 && i <= accessible });
    }
  }
  return rooms;
}
