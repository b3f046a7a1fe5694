import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';

import { loadConfig } from '../../src/config';
import { composeCommand } from '../../scripts/ensure-tools';

/**
 * No Docker engine runs here, so docker-compose.yml is checked the way the engine would first
 * read it: `docker compose config` must accept it and describe the documented layout.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const compose = composeCommand(loadConfig().cliCacheDir);

function run(args: string[], env: Record<string, string | undefined>) {
  if (!compose) throw new Error('No docker compose here: run `npm run tools` (it builds one with Go)');
  const [cmd, ...pre] = compose;
  return spawnSync(cmd!, [...pre, '-f', path.join(ROOT, 'docker-compose.yml'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    encoding: 'utf8',
  });
}

test('docker-compose.yml is valid and has the documented services', () => {
  const r = run(['config', '--format', 'json'], { CODEC_KEY: crypto.randomBytes(32).toString('base64') });
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.status).toBe(0);
  const cfg = JSON.parse(r.stdout) as {
    services: Record<
      string,
      {
        image?: string;
        build?: unknown;
        ports?: unknown[];
        container_name?: string;
        environment?: Record<string, string>;
        volumes?: { source: string; target: string }[];
        entrypoint?: string[];
        command?: string[];
      }
    >;
  };
  expect(Object.keys(cfg.services).sort()).toEqual([
    'api',
    'postgres',
    'temporal-frontend',
    'temporal-history',
    'temporal-matching',
    'temporal-schema',
    'temporal-setup',
    'temporal-ui',
    'temporal-worker',
    'worker',
  ]);
  // One server config for both layouts: each service mounts deploy/temporal (what `npm run
  // cluster` reads) and starts the one service it names.
  for (const svc of ['frontend', 'history', 'matching', 'worker']) {
    const c = cfg.services[`temporal-${svc}`]!;
    expect(c.image).toMatch(/^temporalio\/server:1\.29\.1$/);
    expect(c.volumes).toEqual([expect.objectContaining({ source: path.join(ROOT, 'deploy', 'temporal') })]);
    expect(c.environment!.TEMPORAL_SERVICE).toBe(svc);
    expect(c.command!.join(' ')).toContain('--config config --env shaodian');
  }
  expect(cfg.services['temporal-schema']!.command!.join(' ')).toContain('postgresql/v12/visibility');
  expect(cfg.services['temporal-ui']!.volumes).toEqual([
    expect.objectContaining({ source: path.join(ROOT, 'deploy', 'temporal-ui') }),
  ]);
  expect(cfg.services.api!.build).toBeDefined();
  expect(cfg.services.worker!.build).toBeDefined();
  // Scalable: `--scale worker=3` needs no fixed name and no published port.
  expect(cfg.services.worker!.ports ?? []).toEqual([]);
  expect(cfg.services.worker!.container_name).toBeUndefined();
  expect(cfg.services.worker!.environment!.TEMPORAL_ADDRESS).toBe('temporal-frontend:7233');
  expect(cfg.services.worker!.environment!.DATABASE_URL).toMatch(/@postgres:5432\//);
});

test('the payload key is required: compose refuses to render without CODEC_KEY', () => {
  const r = run(['config', '--quiet'], {});
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('CODEC_KEY');
});
