import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { resolveTemporalCli } from '../../src/temporal/cli';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort } from './ports';

/**
 * One Temporal dev server for the whole run (our own launcher, so it is tested too), on free
 * ports, with our search attributes. Test files share it and keep apart by task queue and
 * workflow ids. Its address goes to the files through the environment.
 */
export default async function globalSetup(): Promise<void> {
  const config = loadConfig({ ...process.env, DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-test-')) });
  const log = createLogger('warn');
  let server: DevServer | undefined;
  if (!process.env.TEMPORAL_TEST_ADDRESS) {
    const cli = await resolveTemporalCli({
      explicitPath: config.TEMPORAL_CLI_PATH,
      projectCacheDir: path.resolve('.cache/bin'),
      userCacheDir: config.cliCacheDir,
      env: config.processEnv,
      log: (m) => console.log(m),
    });
    server = await startDevServer({
      cliPath: cli.path,
      dataDir: config.dataDir,
      namespace: config.TEMPORAL_NAMESPACE,
      port: await freePort(),
      uiPort: await freePort(),
      headless: true,
      log,
    });
    process.env.TEMPORAL_TEST_ADDRESS = server.address;
    process.env.TEMPORAL_CLI_PATH_RESOLVED = cli.path;
  }
  process.env.TEMPORAL_TEST_NAMESPACE = config.TEMPORAL_NAMESPACE;
  (globalThis as { __shaodianDevServer?: DevServer }).__shaodianDevServer = server;
  (globalThis as { __shaodianDataDir?: string }).__shaodianDataDir = config.dataDir;
}
