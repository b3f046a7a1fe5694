import { createLogger, PII_PATHS } from '../../src/log';

/**
 * The logger (pino): one JSON line per event, info to stdout and warn/error to stderr, and
 * personal data redacted even when a caller passes it by mistake.
 */
function capture(level: Parameters<typeof createLogger>[0] = 'debug') {
  const out: string[] = [];
  const err: string[] = [];
  const log = createLogger(
    level,
    { service: 'test' },
    { out: { write: (l: string) => out.push(l) }, err: { write: (l: string) => err.push(l) } },
  );
  return { log, out, err, lines: () => [...out, ...err].map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const PERSON = { name: '张小明', idNumber: '110101199001011234', phone: '+86 138 0000 0000', birthDate: '1990-01-01' };

test('one JSON line per event with t, level, msg and the fields; info to stdout, warn and error to stderr', () => {
  const c = capture();
  c.log.info('case started', { caseNo: 'QC1', n: 2 });
  c.log.warn('slow', { ms: 900 });
  c.log.error('failed', { caseNo: 'QC1' });
  c.log.debug('detail');
  expect(c.out).toHaveLength(2);
  expect(c.err).toHaveLength(2);
  const [info] = c.out.map((l) => JSON.parse(l));
  expect(info).toMatchObject({ level: 'info', msg: 'case started', caseNo: 'QC1', n: 2, service: 'test' });
  expect(Date.parse(info.t)).not.toBeNaN();
  expect(c.err.map((l) => JSON.parse(l).level)).toEqual(['warn', 'error']);
  expect(c.out.every((l) => l.endsWith('\n'))).toBe(true);
});

test('levels below the configured one, and everything when silent, are not written', () => {
  const w = capture('warn');
  w.log.info('no');
  w.log.debug('no');
  w.log.warn('yes');
  expect(w.lines().map((l) => l.msg)).toEqual(['yes']);
  const s = capture('silent');
  s.log.error('no');
  expect(s.lines()).toEqual([]);
});

test('personal data never reaches a line: a person, an id number, a phone, an address, one level down too', () => {
  const c = capture();
  c.log.info('transfer', {
    caseNo: 'QC2',
    person: PERSON,
    idNumber: PERSON.idNumber,
    phone: PERSON.phone,
    homeAddress: '1 Example Road, Room 101',
    request: { person: PERSON, pickupAddress: '1 Example Road', transport: 'vehicle' },
  });
  c.log.child({ worker: 'w1' }).warn('again', { body: { address: '2 Road', idNumber: PERSON.idNumber } });
  const text = [...c.out, ...c.err].join('');
  for (const v of [PERSON.name, PERSON.idNumber, PERSON.phone, PERSON.birthDate, 'Example Road', '2 Road'])
    expect(text).not.toContain(v);
  const [line] = c.lines();
  expect(line).toMatchObject({ caseNo: 'QC2', person: '[redacted]', request: { transport: 'vehicle' } });
  expect(PII_PATHS).toEqual(expect.arrayContaining(['person', '*.person', 'idNumber', '*.idNumber']));
});

test('errors are their name and message, without a stack', () => {
  const c = capture();
  const e = new TypeError('bad input');
  c.log.error('failed', { err: e, cause: new Error('deeper') });
  const [line] = c.lines();
  expect(line!.err).toEqual({ name: 'TypeError', message: 'bad input' });
  expect(line!.cause).toEqual({ name: 'Error', message: 'deeper' });
  expect(JSON.stringify(line)).not.toContain('at ');
});
