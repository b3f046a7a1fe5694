// npm here does not record other platforms' optional packages (npm/cli#4828, #8320), and
// `npm ci` then refuses the lockfile ("Missing: …@ from lock file"). This adds the missing
// entries from the registry, marked optional with their os/cpu/libc, so `npm ci` works on
// every platform and skips what does not fit. Run after `npm install` changes the lockfile:
//   node scripts/lock-platform-deps.mjs
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const [where, meta] of Object.entries(pkgs)) {
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const nested = `${where}/node_modules/${name}`;
    const hoisted = `node_modules/${name}`;
    if (pkgs[nested] || pkgs[hoisted]) continue;
    const v = registryInfo(name, range) ?? fromName(name, range);
    pkgs[hoisted] = {
      version: v.version,
      ...(v.dist?.integrity ? { integrity: v.dist.integrity } : {}),
      ...(v.cpu ? { cpu: v.cpu } : {}),
      ...(v.license ? { license: v.license } : {}),
      ...(v.libc ? { libc: v.libc } : {}),
      optional: true,
      ...(v.os ? { os: v.os } : {}),
      ...(v.engines ? { engines: v.engines } : {}),
    };
    added++;
  }
}
/** The registry's record, or undefined where this machine's mirror carries no such build. */
function registryInfo(name, range) {
  try {
    const info = JSON.parse(
      execFileSync('npm', ['view', `${name}@${range}`, '--json'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
    return Array.isArray(info) ? info[info.length - 1] : info;
  } catch {
    return undefined;
  }
}

/** os/cpu/libc read from a platform package's name (e.g. core-linux-arm64-musl), enough to skip it. */
function fromName(name, version) {
  const parts = name.split('/').pop().split('-');
  const oses = ['darwin', 'linux', 'win32', 'freebsd', 'android', 'openharmony', 'sunos', 'aix', 'netbsd', 'openbsd'];
  const cpus = ['arm64', 'x64', 'arm', 'ia32', 'ppc64', 's390x', 'riscv64', 'loong64', 'wasm32', 'mips64el'];
  const os = parts.find((p) => oses.includes(p));
  const cpu = parts.find((p) => cpus.includes(p));
  const libc =
    parts.includes('musl') || parts.includes('musleabihf')
      ? 'musl'
      : parts.includes('gnu') || parts.includes('gnueabihf')
        ? 'glibc'
        : undefined;
  return { version, ...(os ? { os: [os] } : {}), ...(cpu ? { cpu: [cpu] } : {}), ...(libc ? { libc: [libc] } : {}) };
}

lock.packages = Object.fromEntries(
  Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`added ${added} platform entries to package-lock.json`);
