/**
 * The supervisor list's route alone: the API app (no worker, no Temporal) over a Postgres
 * database with M synthetic read-model rows, against the bench's bare indexed SQL on the same
 * database. Where `npm run bench -- --only list` measures the whole system, this splits a page's
 * time (p50 of each, printed as JSON):
 *
 * - `api`: a page of 50 through HTTP, the client in the same process (no hop between processes);
 * - `apiOtherProcess`: the same page from a child process, as the bench's client calls the API;
 * - `apiLimit1`: a page of one (what a page costs apart from its rows);
 * - `httpFloor`: a bare Node HTTP server answering the same bytes (HTTP and the client's parse);
 * - `queryFloor`: a bare Node HTTP server running the bare query (its own connection) and answering
 *   its rows as the API's summaries in JSON: the least a list route can cost (no auth, no framework);
 * - `unmatched404`: a path no route takes (Express, its middleware and a problem answer);
 * - `bareSql`: the bench's bare query.
 *
 * With `--cpu-prof` it shows where the route's time goes.
 *
 *   node --import tsx bench/list-probe.ts --m 100000 --pages 2000 [--keep]
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/list-probe.ts --m 100000
 *
 * Needs the Postgres of TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test);
 * makes and drops a database of its own.
 */
import crypto from 'node:crypto';
import { fork } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';

import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';

import { createApp } from '../src/api/app';
import { loadConfig } from '../src/config';
import { openDatabase } from '../src/db';
import { createLogger } from '../src/log';
import type { DependencyMonitor } from '../src/api/dependencies';
import { ApiClient, latencyStats } from './lib';
import { bareListPage, createBenchKeys, insertSyntheticCases, seedBenchHotels, type ListFilter } from './fixtures';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

const stat = (xs: number[]) => latencyStats(xs, 3);

/**
 * `--client URL KEY QS QS`: the API's pages from a process of its own (as the bench calls the
 * system), alternating the two filters as the in-process loop does.
 */
async function clientMain(): Promise<void> {
  const i = process.argv.indexOf('--client');
  const [url, key, ...qs] = process.argv.slice(i + 1, i + 5) as [string, string, string, string];
  const api = new ApiClient(url, key);
  const pages = arg('pages', 2000);
  const xs: number[] = [];
  for (let r = 0; r < 2; r++)
    for (let p = 0; p < pages; p++) {
      const t = performance.now();
      await api.get(`/api/v1/cases?${qs[p % 2]}&limit=50`);
      if (r === 1) xs.push(performance.now() - t);
    }
  process.send!(stat(xs));
}

/** A bare query's row as the API's case summary: the same fields and formats, by hand. */
const summaryOf = (r: Record<string, unknown>) => {
  const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : null);
  return {
    caseNo: r.case_no,
    workflowId: r.workflow_id,
    district: r.district,
    street: r.street,
    displayName: r.display_name ?? null,
    phase: r.phase,
    colour: r.colour ?? null,
    policyName: r.policy_name,
    hotelId: r.hotel_id ?? null,
    roomId: r.room_id ?? null,
    roomNo: r.room_no ?? null,
    requestedAt: iso(r.requested_at),
    arrivedAt: iso(r.arrived_at),
    stayStart: iso(r.stay_start),
    releaseDue: iso(r.release_due),
    nextCheckDue: iso(r.next_check_due),
    pendingResults: r.pending_results,
    openEscalations: r.open_escalations,
    openRedEscalations: r.open_red_escalations,
    inspectionStatus: r.inspection_status,
    endedAt: iso(r.ended_at),
    updatedAt: iso(r.updated_at),
  };
};

async function main(): Promise<void> {
  const m = arg('m', 100_000);
  const pages = arg('pages', 2000);
  const base = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `shaodian_listprobe_${crypto.randomBytes(4).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database "${name}"`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  const database = await openDatabase({ databaseUrl: u.toString(), dataDir: os.tmpdir() });
  const sql = postgres(u.toString(), { max: 1, onnotice: () => undefined });
  try {
    const { hotels } = await seedBenchHotels(database.db, 2000);
    const keys = await createBenchKeys(database.db, crypto.randomBytes(3).toString('hex'), hotels);
    await insertSyntheticCases(database.db, m, hotels);
    await sql`analyze cases`;

    const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent', DATABASE_URL: u.toString() });
    const connection = Connection.lazy({ address: '127.0.0.1:1', connectTimeout: 200 });
    const up = { isDown: () => false, require: () => undefined } as unknown as DependencyMonitor;
    const app = createApp({
      config,
      db: database.db,
      temporal: { client: new Client({ connection }), connection },
      log: createLogger('silent'),
      monitor: up,
    });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const api = new ApiClient(url, keys.supervisor);

    const filters: { qs: string; where: ListFilter }[] = [
      { qs: 'phase=OBSERVATION&colour=red', where: { phase: 'OBSERVATION', colour: 'red' } },
      { qs: `phase=OBSERVATION&hotelId=${hotels[0]}`, where: { phase: 'OBSERVATION', hotelId: hotels[0]! } },
    ];
    // The floor: a bare Node HTTP server answering a page of the same bytes, no Express, no query.
    const pageText = JSON.stringify(await api.get(`/api/v1/cases?${filters[0]!.qs}&limit=50`));
    const bare = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(pageText) });
      res.end(pageText);
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const bareApi = new ApiClient(`http://127.0.0.1:${(bare.address() as AddressInfo).port}`, keys.supervisor);
    // The query's floor: the bare query behind a bare HTTP server, its rows answered as JSON.
    const floorSql = postgres(u.toString(), { max: 1, onnotice: () => undefined });
    const queryFloor = http.createServer((req, res) => {
      const where = filters[req.url === '/1' ? 1 : 0]!.where;
      void bareListPage(floorSql, where, '').then((rows) => {
        // The fields the API answers (schemas CaseSummary), not every column.
        const text = JSON.stringify({ items: rows.slice(0, 50).map(summaryOf), nextCursor: null });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      });
    });
    await new Promise<void>((r) => queryFloor.listen(0, '127.0.0.1', r));
    const queryFloorApi = new ApiClient(
      `http://127.0.0.1:${(queryFloor.address() as AddressInfo).port}`,
      keys.supervisor,
    );
    const queryFloorLat: number[] = [];
    const floorLat: number[] = [];
    const missLat: number[] = [];
    const apiLat: number[] = [];
    const sqlLat: number[] = [];
    const oneLat: number[] = [];
    const round = async (record: boolean) => {
      for (let i = 0; i < pages; i++) {
        const f = filters[i % 2]!;
        let t = performance.now();
        await api.get(`/api/v1/cases?${f.qs}&limit=50`);
        if (record) apiLat.push(performance.now() - t);
        t = performance.now();
        await bareListPage(sql, f.where, '');
        if (record) sqlLat.push(performance.now() - t);
        t = performance.now();
        await api.get(`/api/v1/cases?${f.qs}&limit=1`);
        if (record) oneLat.push(performance.now() - t);
        t = performance.now();
        await bareApi.get(`/x`);
        if (record) floorLat.push(performance.now() - t);
        t = performance.now();
        await api.get(`/api/v1/nothing-here`).catch(() => undefined);
        if (record) missLat.push(performance.now() - t);
        t = performance.now();
        await queryFloorApi.get(`/${i % 2}`);
        if (record) queryFloorLat.push(performance.now() - t);
      }
    };
    await round(false);
    await round(true);
    // The same page from another process, as the bench calls the system.
    const child = fork(
      process.argv[1]!,
      ['--client', url, keys.supervisor, filters[0]!.qs, filters[1]!.qs, '--pages', String(pages)],
      {
        execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')),
      },
    );
    const apiOtherProcess = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the client process exited (${code}) without a result`)));
    });
    const a = stat(apiLat);
    const b = stat(sqlLat);
    console.log(
      JSON.stringify(
        {
          rows: m,
          api: a,
          apiOtherProcess,
          apiLimit1: stat(oneLat),
          httpFloor: stat(floorLat),
          unmatched404: stat(missLat),
          queryFloor: stat(queryFloorLat),
          pageBytes: Buffer.byteLength(pageText),
          bareSql: b,
          ratio: Math.round((b.p50 / a.p50) * 1000) / 1000,
        },
        null,
        2,
      ),
    );
    server.close();
    bare.close();
    queryFloor.close();
    await floorSql.end();
  } finally {
    await sql.end();
    await database.close();
    if (!process.argv.includes('--keep')) await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
  }
}

void (process.argv.includes('--client') ? clientMain() : main()).then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
