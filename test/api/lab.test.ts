import { eq } from 'drizzle-orm';
import request from 'supertest';

import { escalations, labResults, samples } from '../../src/db/schema';
import { createHarness, validTransfer, type Harness } from './harness';

let h: Harness;
let caseNo: string;
let workflowId: string;

beforeAll(async () => {
  h = await createHarness({ label: 'lab' });
  // A workerless case: signals are accepted into its history all the same.
  const res = await request(h.app).post('/api/v1/transfers').set(h.auth('community')).send(validTransfer());
  ({ caseNo, workflowId } = res.body);
  const dueAt = new Date();
  await h.db.insert(samples).values([
    {
      sampleId: `${caseNo}-S1`,
      caseNo,
      type: 'PCR',
      reason: 'scheduled',
      labId: 'LAB1',
      dueAt,
      orderedAt: dueAt,
      status: 'ordered',
    },
    {
      sampleId: `${caseNo}-S2`,
      caseNo,
      type: 'PCR',
      reason: 'scheduled',
      labId: 'LAB2',
      dueAt,
      orderedAt: dueAt,
      status: 'ordered',
    },
    // Planned, never ordered: the sample a lab types by mistake for another.
    { sampleId: `${caseNo}-S3`, caseNo, type: 'PCR', reason: 'scheduled', labId: null, dueAt, status: 'planned' },
  ]);
});
afterAll(async () => h?.close());

const post = (body: unknown) =>
  request(h.app)
    .post('/api/v1/lab/results')
    .set(h.auth('lab'))
    .send(body as object);

test('a batch is answered result by result; only ordered samples from this lab reach the case; a different result is a correction', async () => {
  const res = await post({
    results: [
      { sampleId: `${caseNo}-S1`, result: 'negative', reportedAt: '2022-04-02T09:00:00+08:00' },
      { sampleId: `${caseNo}-S1`, result: 'negative' },
      { sampleId: `${caseNo}-S2`, result: 'positive' },
      { sampleId: `${caseNo}-S3`, result: 'negative' },
      { sampleId: 'NOBODY-S9', result: 'positive' },
    ],
  });
  expect(res.status).toBe(200);
  expect(res.body.results.map((r: { status: string }) => r.status)).toEqual([
    'applied',
    'duplicate',
    'forbidden',
    'not_ordered',
    'unknown_sample',
  ]);
  expect(res.body.counts).toEqual({ applied: 1, duplicate: 1, forbidden: 1, not_ordered: 1, unknown_sample: 1 });

  const again = await post({ sampleId: `${caseNo}-S1`, result: 'negative' });
  expect(again.body).toEqual({ sampleId: `${caseNo}-S1`, status: 'duplicate', caseNo });
  // The lab's correction is delivered, not dropped as a duplicate.
  const corrected = await post({ sampleId: `${caseNo}-S1`, result: 'positive' });
  expect(corrected.body).toEqual({ sampleId: `${caseNo}-S1`, status: 'corrected', caseNo });

  const ledger = await h.db.select().from(labResults).where(eq(labResults.labKeyId, h.keyIds.lab));
  expect(ledger).toHaveLength(7);
  expect(ledger.filter((r) => r.status === 'unknown_sample')[0]).toMatchObject({ sampleId: 'NOBODY-S9', caseNo: null });

  const history = await h.temporal.client.workflow.getHandle(workflowId).fetchHistory();
  const signals = (history.events ?? []).filter(
    (e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'labResult',
  );
  expect(signals).toHaveLength(2);
});

test('1,000 results in one batch, all answered', async () => {
  const results = Array.from({ length: 1000 }, (_, i) => ({ sampleId: `BULK-${i}`, result: 'negative' }));
  const t0 = Date.now();
  const res = await post({ results });
  expect(res.status).toBe(200);
  expect(res.body.results).toHaveLength(1000);
  expect(res.body.counts).toEqual({ unknown_sample: 1000 });
  expect(Date.now() - t0).toBeLessThan(10_000);
});

test('a result for a case whose workflow has closed is kept on its record and escalated, not "resend" forever', async () => {
  const filed = await request(h.app)
    .post('/api/v1/transfers')
    .set(h.auth('community'))
    .send(validTransfer({ requestId: 'req-lab-closed-case' }));
  const closedCase = filed.body.caseNo as string;
  const at = new Date();
  await h.db.insert(samples).values({
    sampleId: `${closedCase}-S1`,
    caseNo: closedCase,
    type: 'PCR',
    reason: 'scheduled',
    labId: 'LAB1',
    dueAt: at,
    orderedAt: at,
    status: 'ordered',
  });
  await h.temporal.client.workflow.getHandle(filed.body.workflowId).terminate('test: the case closed');
  const res = await post({ sampleId: `${closedCase}-S1`, result: 'positive' });
  expect(res.body).toMatchObject({ sampleId: `${closedCase}-S1`, status: 'case_closed', caseNo: closedCase });
  const [esc] = await h.db.select().from(escalations).where(eq(escalations.caseNo, closedCase));
  expect(esc).toMatchObject({ kind: 'late_result', severity: 'red', status: 'open', sampleId: `${closedCase}-S1` });
  const [row] = await h.db
    .select()
    .from(samples)
    .where(eq(samples.sampleId, `${closedCase}-S1`));
  expect(row).toMatchObject({ status: 'resulted', result: 'positive' });
  // Sent again, it is the same result on the same closed case: nothing new opens.
  const again = await post({ sampleId: `${closedCase}-S1`, result: 'positive' });
  expect(again.body.status).toMatch(/duplicate|case_closed/);
  expect(await h.db.select().from(escalations).where(eq(escalations.caseNo, closedCase))).toHaveLength(1);
});
