import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { loadConfig } from '../../src/config';
import { goToolPath } from '../../src/temporal/go-tools';

/**
 * deploy/temporal/config/shaodian.yaml is a template the Temporal server renders itself: the
 * real server (built by `npm run tools`) renders it with the variables `npm run cluster` and
 * docker-compose.yml set, and each lands where it must.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const server = goToolPath('temporal-server', loadConfig().cliCacheDir);

function render(env: Record<string, string>): string {
  const r = spawnSync(
    server,
    ['--config', path.join(ROOT, 'deploy', 'temporal', 'config'), '--env', 'shaodian', 'render-config'],
    {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
    },
  );
  expect(r.status).toBe(0);
  return r.stdout;
}

test('the defaults are Temporal’s own layout on a local Postgres', () => {
  const out = render({});
  expect(out).toMatch(/grpcPort: 7233[\s\S]*httpPort: 7243[\s\S]*membershipPort: 6933/);
  expect(out).toMatch(/databaseName: temporal\n/);
  expect(out).toMatch(/databaseName: temporal_visibility\n/);
  expect(out).toMatch(/numHistoryShards: 4/);
  expect(out).toMatch(/pluginName: postgres12/);
});

test('every variable the cluster script sets is honoured', () => {
  const out = render({
    SHAODIAN_TEMPORAL_DB: 'temporal_x',
    SHAODIAN_TEMPORAL_VISIBILITY_DB: 'temporal_x_visibility',
    SHAODIAN_TEMPORAL_DB_HOST: 'db.internal',
    SHAODIAN_TEMPORAL_DB_PORT: '6543',
    SHAODIAN_TEMPORAL_SHARDS: '16',
    SHAODIAN_TEMPORAL_FRONTEND_PORT: '17233',
    SHAODIAN_TEMPORAL_FRONTEND_MEMBERSHIP_PORT: '16933',
    SHAODIAN_TEMPORAL_HISTORY_PORT: '17234',
    SHAODIAN_TEMPORAL_METRICS_ADDRESS: '127.0.0.1:18000',
    SHAODIAN_TEMPORAL_BROADCAST: '10.0.0.7',
  });
  expect(out).toMatch(/databaseName: temporal_x\n/);
  expect(out).toMatch(/databaseName: temporal_x_visibility\n/);
  expect(out).toMatch(/connectAddr: db\.internal:6543/);
  expect(out).toMatch(/numHistoryShards: 16/);
  expect(out).toMatch(/grpcPort: 17233[\s\S]*httpPort: 17243[\s\S]*membershipPort: 16933/);
  expect(out).toMatch(/grpcPort: 17234[\s\S]*membershipPort: 16934/);
  expect(out).toMatch(/listenAddress: 127\.0\.0\.1:18000/);
  expect(out).toMatch(/rpcAddress: 10\.0\.0\.7:17233/);
  expect(out).toMatch(/broadcastAddress: 10\.0\.0\.7/);
});
