import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The CLI release whose `go install` works (later ones carry a replace directive). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
export const TEMPORAL_CLI_VERSION = 'v1.5.1';

export interface ResolveOptions {
  /** TEMPORAL_CLI_PATH */
  explicitPath?: string;
  /** The project's cache directory (git-ignored), e.g. <repo>/.cache/bin */
  projectCacheDir: string;
  /** A per-user cache shared by every clone, e.g. ~/.cache/shaodian/bin */
  userCacheDir?: string;
  /** Try `go install` when nothing is found. */
  allowBuild?: boolean;
  log?: (msg: string) => void;
  /** The environment to search (PATH) and to pass to `go`. */
  env: Record<string, string | undefined>;
}

export interface Resolved {
  path: string;
  source: 'TEMPORAL_CLI_PATH' | 'PATH' | 'project-cache' | 'user-cache' | 'go-install' | 'sdk-download';
}

export class TemporalCliNotFound extends Error {
  constructor(tried: string[]) {
    super(
      'No Temporal CLI found. Tried:\n' +
        tried.map((t) => `  - ${t}`).join('\n') +
        '\nInstall one of:\n' +
        `  - Go 1.22+ (https://go.dev/dl), then re-run: the project builds ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}\n` +
        '  - the Temporal CLI on PATH (https://docs.temporal.io/cli), or set TEMPORAL_CLI_PATH\n' +
        '  - or point TEMPORAL_ADDRESS at an existing Temporal cluster.',
    );
    this.name = 'TemporalCliNotFound';
  }
}

export const defaultUserCacheDir = (xdgCacheHome?: string): string =>
  path.join(xdgCacheHome || path.join(os.homedir(), '.cache'), 'shaodian', 'bin');

async function works(bin: string): Promise<boolean> {
  try {
    await run(bin, ['--version'], { timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/**
 * Finds a Temporal CLI in the documented order: TEMPORAL_CLI_PATH, `temporal` on PATH,
 * the project cache, the per-user cache, a pinned `go install`, the SDK's own download.
 */
export async function resolveTemporalCli(opts: ResolveOptions): Promise<Resolved> {
  const log = opts.log ?? (() => undefined);
  const env = opts.env;
  const tried: string[] = [];

  if (opts.explicitPath) {
    if (await works(opts.explicitPath)) return { path: opts.explicitPath, source: 'TEMPORAL_CLI_PATH' };
    // An explicit path that does not work is a configuration error, not something to paper over.
    throw new TemporalCliNotFound([`TEMPORAL_CLI_PATH=${opts.explicitPath} (not executable or failed --version)`]);
  }
  tried.push('TEMPORAL_CLI_PATH (unset)');

  const fromPath = onPath('temporal', env.PATH);
  if (fromPath && (await works(fromPath))) return { path: fromPath, source: 'PATH' };
  tried.push('`temporal` on PATH');

  const projectBin = path.join(opts.projectCacheDir, 'temporal');
  if (await works(projectBin)) return { path: projectBin, source: 'project-cache' };
  tried.push(projectBin);

  if (opts.userCacheDir) {
    const userBin = path.join(opts.userCacheDir, 'temporal');
    if (await works(userBin)) {
      linkInto(userBin, projectBin);
      return { path: userBin, source: 'user-cache' };
    }
    tried.push(userBin);
  }

  if (opts.allowBuild !== false) {
    const go = onPath('go', env.PATH) ?? ['/usr/local/go/bin/go'].find((p) => fs.existsSync(p));
    if (go) {
      const target = opts.userCacheDir ?? opts.projectCacheDir;
      fs.mkdirSync(target, { recursive: true });
      log(
        `Building the Temporal CLI ${TEMPORAL_CLI_VERSION} with Go into ${target} (first run only; a few minutes)...`,
      );
      try {
        await run(go, ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
          env: { ...env, CGO_ENABLED: '0', GOBIN: target, GOFLAGS: '-mod=mod' },
          maxBuffer: 64 * 1024 * 1024,
          timeout: 45 * 60_000,
        });
        const built = path.join(target, 'temporal');
        if (await works(built)) {
          if (target !== opts.projectCacheDir) linkInto(built, projectBin);
          return { path: built, source: 'go-install' };
        }
        tried.push(`go install into ${target} (built binary does not run)`);
      } catch (err) {
        tried.push(
          `go install ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION} failed: ${(err as Error).message.split('\n')[0]}`,
        );
      }
    } else {
      tried.push('go (not installed)');
    }
  }

  // Last resort, on a machine with internet: the SDK downloads and caches its own CLI.
  // The dev-server launcher then lets the SDK run it (see dev-server.ts).
  if (env.SHAODIAN_ALLOW_SDK_DOWNLOAD !== '0' && (await canReachInternet())) {
    return { path: '', source: 'sdk-download' };
  }
  tried.push('@temporalio/testing cached download (no internet)');

  throw new TemporalCliNotFound(tried);
}

function linkInto(source: string, dest: string): void {
  try {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.rmSync(dest, { force: true });
    fs.symlinkSync(source, dest);
  } catch {
    // a cache link is a convenience only
  }
}

/** Whether the SDK's download host answers; a closed network refuses at once. */
async function canReachInternet(): Promise<boolean> {
  try {
    const res = await fetch('https://temporal.download/', { method: 'HEAD', signal: AbortSignal.timeout(3000) });
    return res.status < 500;
  } catch {
    return false;
  }
}
