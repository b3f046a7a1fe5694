/**
 * Makes sure the tools the test suite needs are on this machine, installing what is missing:
 * - the Temporal CLI (dev server): resolved or built from Go modules into ~/.cache/shaodian/bin;
 * - the Temporal server, temporal-sql-tool and the Temporal UI server (npm run cluster and
 *   test:cluster): built from Go modules into the same cache;
 * - Docker Compose, only to validate docker-compose.yml (`config`): `docker compose`,
 *   `docker-compose`, or built from Go modules into the same cache;
 * - Chromium and a CJK font for the dashboard's browser test (the font also sets the release
 *   certificate's Chinese), and pdftotext for the certificate's test: Debian packages.
 * Runs before `npm test` (pretest) and in .ci/run. Everything it builds is cached per user,
 * so a fresh clone reuses it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { loadConfigOrExit } from '../src/config';
import { resolveTemporalCli } from '../src/temporal/cli';
import { GO_TOOLS, resolveGoTool, type GoToolName } from '../src/temporal/go-tools';

const COMPOSE_MODULE = 'github.com/docker/compose/v2/cmd';
const COMPOSE_VERSION = 'v2.29.7';

function ok(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/** The first working Docker Compose: the plugin, the standalone binary, or our cached build. */
export function composeCommand(cacheDir: string): string[] | undefined {
  if (ok('docker', ['compose', 'version'])) return ['docker', 'compose'];
  if (ok('docker-compose', ['version'])) return ['docker-compose'];
  const cached = path.join(cacheDir, 'docker-compose');
  if (ok(cached, ['version'])) return [cached];
  return undefined;
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const env = config.processEnv;
  const cli = await resolveTemporalCli({
    explicitPath: config.TEMPORAL_CLI_PATH,
    projectCacheDir: path.resolve(__dirname, '..', '.cache', 'bin'),
    userCacheDir: config.cliCacheDir,
    env,
    log: (m) => console.log(m),
  });
  console.log(`temporal: ${cli.path} (${cli.source})`);

  if (!composeCommand(config.cliCacheDir)) {
    console.log(`docker compose: building ${COMPOSE_MODULE}@${COMPOSE_VERSION} with Go (first run only)...`);
    fs.mkdirSync(config.cliCacheDir, { recursive: true });
    execFileSync('go', ['install', `${COMPOSE_MODULE}@${COMPOSE_VERSION}`], {
      env: { ...env, CGO_ENABLED: '0', GOBIN: config.cliCacheDir },
      stdio: 'inherit',
    });
    fs.renameSync(path.join(config.cliCacheDir, 'cmd'), path.join(config.cliCacheDir, 'docker-compose'));
  }
  console.log(`docker compose: ${composeCommand(config.cliCacheDir)!.join(' ')}`);

  // The production topology (npm run cluster, npm run test:cluster): Temporal's server, its SQL
  // schema tool and its Web UI, built from Go modules like the CLI.
  for (const tool of Object.keys(GO_TOOLS) as GoToolName[]) {
    const bin = await resolveGoTool(tool, { cacheDir: config.cliCacheDir, env, log: (m) => console.log(m) });
    console.log(`${tool}: ${bin}`);
  }

  const missing: string[] = [];
  if (!fs.existsSync('/usr/bin/chromium')) missing.push('chromium');
  if (!ok('sh', ['-c', 'fc-list | grep -qi wqy'])) missing.push('fonts-wqy-microhei');
  // The release certificate's test reads its PDF back as text.
  if (!fs.existsSync('/usr/bin/pdftotext')) missing.push('poppler-utils');
  if (missing.length) {
    if (process.getuid?.() !== 0) {
      throw new Error(`Install ${missing.join(' ')} (Debian: sudo apt-get install -y ${missing.join(' ')})`);
    }
    console.log(`apt-get install ${missing.join(' ')}...`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
      stdio: 'inherit',
      env: { ...env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  console.log('chromium: /usr/bin/chromium');
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
