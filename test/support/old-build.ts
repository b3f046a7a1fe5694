import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The repository this checkout is. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/**
 * Another build of this project, taken from git at `commit` into `into` (created; only `paths`
 * when given), running on this checkout's node_modules: the upgrade tests run earlier builds'
 * workers beside or before this one's. Needs the same dependencies as this build.
 */
export function checkoutBuild(commit: string, into: string, paths: string[] = []): string {
  fs.mkdirSync(into, { recursive: true });
  const tar = execFileSync('git', ['-C', REPO_ROOT, 'archive', '--format=tar', commit, ...paths], {
    maxBuffer: 512 * 1024 * 1024,
  });
  execFileSync('tar', ['-x', '-C', into], { input: tar });
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(into, 'node_modules'));
  return into;
}
