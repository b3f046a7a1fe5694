import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Connection } from '@temporalio/client';

import { createLogger } from '../../src/log';
import { startSdkDevServer } from '../../src/temporal/dev-server';
import { searchAttributeKeys } from '../../src/temporal/search-attributes';
import { freePort } from '../support/ports';

/**
 * The download fallback lets the SDK run the dev server. Without internet here the download
 * itself cannot run, so the test hands the SDK our CLI as an existing path: everything else
 * (database file, namespace, port, search attributes, teardown) is the code that runs then.
 */
test('the SDK-run dev server persists to our file with our namespace and search attributes', async () => {
  const cli = process.env.TEMPORAL_CLI_PATH_RESOLVED;
  if (!cli) throw new Error('global setup did not resolve a Temporal CLI');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-sdkdev-'));
  // A port found free can be taken by another socket before the server binds it (seen once in
  // CI: "address already in use"): start again on fresh ports, at most three times.
  const start = async () =>
    startSdkDevServer({
      executable: { type: 'existing-path', path: cli },
      dataDir,
      namespace: 'sdk-ns',
      port: await freePort(),
      uiPort: await freePort(),
      headless: true,
      log: createLogger('silent'),
    });
  const server = await start()
    .catch(() => start())
    .catch(() => start());
  try {
    const conn = await Connection.connect({ address: server.address });
    const sa = await conn.operatorService.listSearchAttributes({ namespace: 'sdk-ns' });
    expect(Object.keys(sa.customAttributes ?? {})).toEqual(
      expect.arrayContaining(searchAttributeKeys.map((k) => k.name)),
    );
    await conn.close();
    expect(fs.existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);
  } finally {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
