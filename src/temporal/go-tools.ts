import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The Go programs of the production topology, built from Go modules like the CLI (no Docker,
 * no binary download): pinned releases whose `go install` works (no replace directives).
 */
export const GO_TOOLS = {
  'temporal-server': { module: 'go.temporal.io/server/cmd/server', version: 'v1.29.1', env: 'TEMPORAL_SERVER_PATH' },
  'temporal-sql-tool': {
    module: 'go.temporal.io/server/cmd/tools/sql',
    version: 'v1.29.1',
    env: 'TEMPORAL_SQL_TOOL_PATH',
  },
  'temporal-ui-server': {
    module: 'github.com/temporalio/ui-server/v2/cmd/server',
    version: 'v2.42.1',
    env: 'TEMPORAL_UI_SERVER_PATH',
  },
} as const;

export type GoToolName = keyof typeof GO_TOOLS;

export interface GoToolOptions {
  /** Per-user cache shared by every clone (~/.cache/shaodian/bin). */
  cacheDir: string;
  env: Record<string, string | undefined>;
  log?: (msg: string) => void;
}

/** The cached file name carries the version, so a version bump builds anew. */
export const goToolPath = (name: GoToolName, cacheDir: string): string =>
  path.join(cacheDir, `${name}-${GO_TOOLS[name].version}`);

/**
 * The path of a tool: its *_PATH variable when set, else the per-user cache, else built there
 * with `go install` (first run only; minutes). Throws with what was tried.
 */
export async function resolveGoTool(name: GoToolName, opts: GoToolOptions): Promise<string> {
  const spec = GO_TOOLS[name];
  const explicit = opts.env[spec.env];
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`${spec.env}=${explicit}: no such file`);
    return explicit;
  }
  const cached = goToolPath(name, opts.cacheDir);
  if (fs.existsSync(cached)) return cached;

  const go = [
    ...(opts.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'go')),
    '/usr/local/go/bin/go',
  ].find((p) => p !== 'go' && fs.existsSync(p));
  if (!go) throw new Error(`${name}: not in ${opts.cacheDir} and no Go to build ${spec.module}@${spec.version}`);
  const gobin = fs.mkdtempSync(path.join(os.tmpdir(), `shaodian-${name}-`));
  opts.log?.(`Building ${name} (${spec.module}@${spec.version}) with Go into ${opts.cacheDir} (first run only)...`);
  try {
    await run(go, ['install', `${spec.module}@${spec.version}`], {
      env: { ...opts.env, CGO_ENABLED: '0', GOBIN: gobin, GOFLAGS: '-mod=mod' },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 60 * 60_000,
    });
    const [built] = fs.readdirSync(gobin);
    if (!built) throw new Error(`go install ${spec.module}@${spec.version} produced nothing`);
    fs.mkdirSync(opts.cacheDir, { recursive: true });
    // Copy then rename: another clone building at the same time never sees half a file.
    const tmp = `${cached}.${process.pid}.tmp`;
    fs.copyFileSync(path.join(gobin, built), tmp);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, cached);
    return cached;
  } finally {
    fs.rmSync(gobin, { recursive: true, force: true });
  }
}
