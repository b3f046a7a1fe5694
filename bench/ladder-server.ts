/**
 * The health check's floor, one rung at a time (`npm run bench -- --only ladder`): the least an
 * HTTP front can do on top of a bare update, to tell what part of the gap to bare Temporal is the
 * work a check must do and what part is ours. A process of its own (as the API is), a bare Node
 * HTTP server, no Express, no router, no validation library:
 *
 * - `http`: the body parsed, the bare update sent through the SDK's client (no codec), its answer
 *   written back as JSON. What any HTTP front must cost.
 * - `http+read`: besides, one prepared read of the target's row (its jurisdiction and version)
 *   before the update: what the jurisdiction check must cost when every check is of another case.
 * - `http+db`: besides, the check's write to the read model after the update, in its least form:
 *   the row's version moved and the check inserted, the writes of the checks waiting at that
 *   moment in one statement (one commit for many, as the project's writer batches). What a read
 *   model must cost.
 * - `http+db+codec`: besides, every payload encrypted with the project's AES-GCM codec (the
 *   targets run on a bare worker with the same codec). What keeping names out of Temporal costs.
 *
 *
 * The intake's rungs, the same way (`POST /start/:id`, the transfer's body as the bare empty
 * workflow's input): `start` (HTTP and the start), `start+db` (besides, the case's provisional row
 * inserted, grouped), `start+db+codec` (besides, the codec).
 *
 * argv[2] is JSON: { address, namespace, databaseUrl, rung, codecKey? (base64, 32 bytes), taskQueue? }.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';

import { AesGcmCodec } from '../src/temporal/codec';
import { checkUpdate } from './baseline-workflows';
import { profileHandlers, serveIpc } from './lib';

export type Rung = 'http' | 'http+read' | 'http+db' | 'http+db+codec';
/** The intake's rungs: `POST /start/:id`, a start of the bare empty workflow with the transfer as its input. */
export type IntakeRung = 'start' | 'start+db' | 'start+db+codec';

interface Args {
  address: string;
  namespace: string;
  databaseUrl: string;
  rung: Rung | IntakeRung;
  codecKey?: string;
  /** The task queue the intake rungs start their workflows on. */
  taskQueue?: string;
}

/** Group commit: the writes that wait while a statement runs go together in the next one. */
function grouped<W>(flushAll: (ws: W[]) => Promise<unknown>): (w: W) => Promise<void> {
  let waiting: { w: W; done: (err?: unknown) => void }[] = [];
  let flushing = false;
  const flush = async () => {
    flushing = true;
    while (waiting.length) {
      const batch = waiting;
      waiting = [];
      try {
        await flushAll(batch.map((b) => b.w));
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.done(err);
      }
    }
    flushing = false;
  };
  return (w) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ w, done: (err) => (err ? reject(err as Error) : resolve()) });
      if (!flushing) void flush();
    });
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  const withRead = args.rung !== 'http' && args.rung !== 'start';
  const withWrite = args.rung.includes('+db');
  const codec = args.codecKey
    ? new AesGcmCodec(new Map([['bench', Buffer.from(args.codecKey, 'base64')]]), 'bench')
    : undefined;
  const connection = await Connection.connect({ address: args.address });
  const client = new Client({
    connection,
    namespace: args.namespace,
    ...(codec ? { dataConverter: { payloadCodecs: [codec] } } : {}),
  });
  const sql = withRead ? postgres(args.databaseUrl, { max: 10, onnotice: () => undefined }) : undefined;

  interface CheckWrite {
    id: string;
    version: number;
    checkId: string;
    temperatureC: number;
  }
  const write = grouped<CheckWrite>(
    (ws) => sql!`
      with moved as (
        update bench_ladder l set version = x.version, updated_at = now()
        from unnest(${ws.map((w) => w.id)}::text[], ${ws.map((w) => w.version)}::int[]) as x(id, version)
        where l.id = x.id)
      insert into bench_ladder_checks (id, target, temperature_c, taken_at)
      select * , now() from unnest(${ws.map((w) => w.checkId)}::text[], ${ws.map((w) => w.id)}::text[],
        ${ws.map((w) => w.temperatureC)}::real[])
      on conflict do nothing`,
  );
  // The intake's provisional row (ours: the case's row in the read model before its worker runs).
  const insertRow = grouped<string>(
    (ids) => sql!`
      insert into bench_ladder (id, district, version)
      select x, 'Bench', 0 from unnest(${ids}::text[]) as x on conflict do nothing`,
  );

  const answer = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const started = /^\/start\/([\w-]+)$/.exec(req.url ?? '');
        if (req.method === 'POST' && started) {
          const id = started[1]!;
          const request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          await client.workflow.start('benchEmpty', {
            taskQueue: args.taskQueue!,
            workflowId: id,
            args: [{ request }],
          });
          if (withWrite) await insertRow(id);
          return answer(res, 202, { workflowId: id, status: 'started' });
        }
        const m = /^\/check\/([\w-]+)$/.exec(req.url ?? '');
        if (req.method !== 'POST' || !m) return answer(res, 404, { title: 'no route' });
        const id = m[1]!;
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { checkId: string; temperatureC: number };
        let version = 0;
        if (sql) {
          const rows = await sql<{ district: string; version: number }[]>`
            select district, version from bench_ladder where id = ${id}`;
          if (!rows[0] || rows[0].district !== 'Bench') return answer(res, 403, { title: 'outside jurisdiction' });
          version = rows[0].version;
        }
        const r = await client.workflow
          .getHandle(id)
          .executeUpdate(checkUpdate, { args: [{ id, temperatureC: body.temperatureC }] });
        if (withWrite)
          await write({ id, version: version + 1, checkId: body.checkId, temperatureC: body.temperatureC });
        answer(res, 200, { status: 'applied', result: r });
      })().catch((err: unknown) => answer(res, 500, { title: (err as Error).message }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    server.close();
    await sql?.end({ timeout: 5 });
    await connection.close();
    process.exit(0);
  };
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('message', (msg: { type?: string }) => {
    if (msg.type === 'stop') void stop();
  });
  serveIpc(profileHandlers());
  process.send?.({ type: 'ready', pid: process.pid, url: `http://127.0.0.1:${port}` });
}

main().catch((err: unknown) => {
  process.send?.({ type: 'failed', error: (err as Error).message });
  process.exit(1);
});
