// Fixes in dependencies that upstream has not released yet, applied after every install
// (`postinstall`), idempotently. Each one names its upstream issue; drop it when a release has it.
//
// postgres (porsager/postgres#1208, #1154; fix proposed in #1209): a small write is deferred with
// setImmediate, and when the server's connection closes first, the deferred write dereferences the
// nulled socket and throws from the timer: an uncatchable TypeError that kills the process. Our
// fault suite hit it (the worker died when the database reset its connections). The guard settles
// the write as the closed connection's error instead, which the query's caller can catch.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const MARK = '/* shaodian: porsager/postgres#1208 */';
const FROM = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const TO = `  function nextWrite(fn) {
    ${MARK}
    if (!socket) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options, socket))
      return false
    }
    const x = socket.write(chunk, fn)`;

let patched = 0;
for (const build of ['src', 'cjs/src', 'cf/src']) {
  const file = path.join(root, 'node_modules', 'postgres', build, 'connection.js');
  if (!fs.existsSync(file)) continue;
  const text = fs.readFileSync(file, 'utf8');
  if (text.includes(MARK)) continue;
  if (!text.includes(FROM)) {
    console.error(
      `patch-deps: ${file} has changed upstream; check whether porsager/postgres#1208 is fixed and drop this patch`,
    );
    process.exit(1);
  }
  fs.writeFileSync(file, text.replace(FROM, TO));
  patched++;
}
if (patched) console.log(`patch-deps: postgres nextWrite guard applied to ${patched} build(s)`);
