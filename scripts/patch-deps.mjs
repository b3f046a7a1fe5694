// Fixes in dependencies that upstream has not released yet, applied after every install
// (`postinstall`), idempotently. Each one names its upstream issue; drop it when a release has it.
//
// postgres (porsager/postgres#1208, #1154; fix proposed in #1209): a small write is deferred with
// setImmediate, and when the server's connection closes first, the deferred write dereferences the
// nulled socket and throws from the timer: an uncatchable TypeError that kills the process. Our
// fault suite hit it (the worker died when the database reset its connections). The guard settles
// the write as the closed connection's error instead, which the query's caller can catch.
//
// postgres (3.4.9; no upstream issue found): the connection counts a result's rows in one variable
// that CommandComplete resets and ErrorResponse does not. A statement that sends rows and then
// fails (our batched read-model write: one function call per row, the fourth refused) leaves the
// count standing, and the connection's next query fills its result from that index: [null, row].
// Code that reads the first row then reads null (test/activities/record-case.test.ts found it: a
// write after a refused batch "returned no row"). The reset on ErrorResponse fixes it.
//
// @temporalio/worker (temporalio/sdk-typescript#1587, "Using async functions degrades
// performance"): the workflow thread installs a V8 promise hook that captures and formats a stack
// trace for every promise a workflow creates, and keeps it while the promise is pending, only to
// answer the `__stack_trace` query. A cached case waits on several promises at all times, so each
// one held about 200 KiB of stack strings and frames (worker memory per open case: 400 KiB with
// it, 204 KiB without, npm run bench -- --only memory). The SDK has no option to turn it off; this
// adds one: SHAODIAN_WORKFLOW_STACK_TRACES=off in the environment when the Worker is created (our
// worker sets it from WORKER_WORKFLOW_STACK_TRACES, off by default). Unset, the SDK behaves as
// released. With it off, the stack-trace queries answer "not enabled"; nothing else changes.
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

const ROWS_MARK = '/* shaodian: rows reset on ErrorResponse */';
const ROWS_FROM = `  function ErrorResponse(x) {
    if (query) {`;
const ROWS_TO = `  function ErrorResponse(x) {
    ${ROWS_MARK}
    rows = 0
    if (query) {`;

// The postgres edits, each in every build of the package that is installed.
const postgresPatches = [
  { mark: ROWS_MARK, from: ROWS_FROM, to: ROWS_TO, what: 'row count reset', upstream: 'ErrorResponse resets rows' },
  { mark: MARK, from: FROM, to: TO, what: 'nextWrite guard', upstream: 'porsager/postgres#1208 is fixed' },
];
for (const p of postgresPatches) {
  let patched = 0;
  for (const build of ['src', 'cjs/src', 'cf/src']) {
    const file = path.join(root, 'node_modules', 'postgres', build, 'connection.js');
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, 'utf8');
    if (text.includes(p.mark)) continue;
    if (!text.includes(p.from)) {
      console.error(`patch-deps: ${file} has changed upstream; check whether ${p.upstream} and drop this patch`);
      process.exit(1);
    }
    fs.writeFileSync(file, text.replace(p.from, p.to));
    patched++;
  }
  if (patched) console.log(`patch-deps: postgres ${p.what} applied to ${patched} build(s)`);
}

// Two edits in @temporalio/worker, one mark each.
const SDK = path.join(root, 'node_modules', '@temporalio', 'worker', 'lib', 'workflow');
const sdkPatches = [
  {
    // The hook is installed only if the setting is not 'off'.
    file: path.join(SDK, 'vm-shared.js'),
    mark: '/* shaodian: temporalio/sdk-typescript#1587 */',
    from: `            this.overridePrepareStackTrace();
            this.setPromiseHook();`,
    to: (mark) => `            this.overridePrepareStackTrace();
            ${mark}
            if (process.env.SHAODIAN_WORKFLOW_STACK_TRACES !== 'off')
                this.setPromiseHook();`,
  },
  {
    // The workflow thread gets the environment this module sees. The same object in production;
    // under jest, the test's own process.env, where a test worker's setting is written.
    file: path.join(SDK, 'threaded-vm.js'),
    mark: '/* shaodian: workflow thread env */',
    from: `new node_worker_threads_1.Worker(require.resolve('./workflow-worker-thread'))`,
    to: (mark) =>
      `new node_worker_threads_1.Worker(require.resolve('./workflow-worker-thread'), ${mark} { env: { ...process.env } })`,
  },
];
let sdkPatched = 0;
for (const p of sdkPatches) {
  // The SDK is a dependency: a file that moved is a changed SDK, not a reason to skip.
  if (!fs.existsSync(p.file)) {
    console.error(`patch-deps: ${p.file} is missing; the SDK has changed upstream, update this patch`);
    process.exit(1);
  }
  const text = fs.readFileSync(p.file, 'utf8');
  if (text.includes(p.mark)) continue;
  if (!text.includes(p.from)) {
    console.error(
      `patch-deps: ${p.file} has changed upstream; check whether the workflow promise hook can be turned off (temporalio/sdk-typescript#1587) and update this patch`,
    );
    process.exit(1);
  }
  fs.writeFileSync(p.file, text.replace(p.from, p.to(p.mark)));
  sdkPatched++;
}
if (sdkPatched)
  console.log(`patch-deps: @temporalio/worker workflow stack traces made optional (${sdkPatched} file(s))`);
