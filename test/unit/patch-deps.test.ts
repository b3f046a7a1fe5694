import fs from 'node:fs';
import path from 'node:path';

/**
 * scripts/patch-deps.mjs runs after every install: without its guard, a database connection reset
 * at the wrong moment kills the process (porsager/postgres#1208; the fault suite's worker died of
 * it). Every build of postgres.js that Node may load must carry it.
 */
test('every build of postgres.js carries the nextWrite guard', () => {
  const root = path.resolve(__dirname, '..', '..', 'node_modules', 'postgres');
  const builds = ['src', 'cjs/src'].map((b) => path.join(root, b, 'connection.js'));
  for (const file of builds) {
    const text = fs.readFileSync(file, 'utf8');
    const body = text.slice(text.indexOf('function nextWrite('), text.indexOf('function connectTimedOut('));
    expect({ file, guarded: /if \(!socket\) \{[\s\S]*CONNECTION_CLOSED[\s\S]*return false/.test(body) }).toEqual({
      file,
      guarded: true,
    });
  }
});

/**
 * And the row count a failed statement left standing: the connection's next query would fill its
 * result from that index ([null, row]). Behaviour: test/activities/record-case.test.ts, whose
 * fenced writes come after a batched write the database refused on a connection of the same pool.
 */
test('every build of postgres.js resets its row count when a statement fails', () => {
  const root = path.resolve(__dirname, '..', '..', 'node_modules', 'postgres');
  for (const file of ['src', 'cjs/src'].map((b) => path.join(root, b, 'connection.js'))) {
    const text = fs.readFileSync(file, 'utf8');
    const body = text.slice(text.indexOf('function ErrorResponse('), text.indexOf('function retry('));
    expect({ file, reset: /\brows = 0\b/.test(body) }).toEqual({ file, reset: true });
  }
});

/**
 * And @temporalio/worker: the workflow promise hook (a stack trace per promise, about half of a
 * cached case's memory) is installed only when SHAODIAN_WORKFLOW_STACK_TRACES is not 'off', and
 * the workflow thread is given that setting (temporalio/sdk-typescript#1587). Behaviour:
 * test/workflows/stack-traces.test.ts.
 */
test('the SDK installs its workflow promise hook only when stack traces are on', () => {
  const dir = path.resolve(__dirname, '..', '..', 'node_modules', '@temporalio', 'worker', 'lib', 'workflow');
  const vmShared = fs.readFileSync(path.join(dir, 'vm-shared.js'), 'utf8');
  const install = vmShared.slice(vmShared.indexOf('    install() {'), vmShared.indexOf('    uninstall() {'));
  expect(install).toMatch(/if \(process\.env\.SHAODIAN_WORKFLOW_STACK_TRACES !== 'off'\)\s+this\.setPromiseHook\(\);/);
  expect(install.match(/setPromiseHook\(\)/g)).toHaveLength(1);
  const threaded = fs.readFileSync(path.join(dir, 'threaded-vm.js'), 'utf8');
  expect(threaded).toMatch(
    /Worker\(require\.resolve\('\.\/workflow-worker-thread'\), \/\* [^*]+ \*\/ \{ env: \{ \.\.\.process\.env \} \}\)/,
  );
});

test('the worker can tell that the switch is installed (it warns at start when not)', async () => {
  const { stackTraceSwitchInstalled } = await import('../../src/worker');
  expect(stackTraceSwitchInstalled()).toBe(true);
});
