import { fromReply } from '../../src/api/routes/lab';
import { LAB_REFUSAL } from '../../src/domain/case/decide';

/** The case's answer to a first result (recordLabResult), as the lab's status (docs/API.md, "Lab"). */
test('each answer of the case maps to the lab status that says what happened', () => {
  const map = (status: string, reason?: string) =>
    fromReply('S1', 'C1', { applied: status === 'applied', status, ...(reason ? { reason } : {}) });
  expect(map('applied')).toEqual({ sampleId: 'S1', status: 'applied', caseNo: 'C1' });
  // Parked: the lab answered before the order's own answer reached the case; counted once it does.
  expect(map('parked').status).toBe('applied');
  expect(map('corrected').status).toBe('corrected');
  expect(map('duplicate').status).toBe('duplicate');
  expect(map('refused', LAB_REFUSAL.unknownSample).status).toBe('unknown_sample');
  expect(map('refused', LAB_REFUSAL.notOrdered).status).toBe('not_ordered');
  expect(map('refused', LAB_REFUSAL.otherLab).status).toBe('forbidden');
  expect(map('conflicting', LAB_REFUSAL.overtaken)).toEqual({
    sampleId: 'S1',
    status: 'conflicting',
    caseNo: 'C1',
    detail: LAB_REFUSAL.overtaken,
  });
  // A refusal this build does not know is never reported as taken.
  expect(map('refused', 'something new').status).toBe('conflicting');
});
