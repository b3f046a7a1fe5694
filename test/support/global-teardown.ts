import fs from 'node:fs';

import type { DevServer } from '../../src/temporal/dev-server';

export default async function globalTeardown(): Promise<void> {
  const g = globalThis as { __shaodianDevServer?: DevServer; __shaodianDataDir?: string };
  await g.__shaodianDevServer?.stop();
  if (g.__shaodianDataDir) fs.rmSync(g.__shaodianDataDir, { recursive: true, force: true });
}
