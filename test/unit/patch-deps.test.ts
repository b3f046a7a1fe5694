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
