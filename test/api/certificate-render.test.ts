import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { DEFAULT_CERTIFICATE_FONT, renderCertificate, type CertificateFacts } from '../../src/api/certificate';

/**
 * The certificate's layout: a number printed on it (case, certificate, sample) is never split
 * across lines, however wide its letters or long the case number (up to 64 characters). A split
 * sample id once failed CI: pdfkit breaks at the hyphen in "QCPJCTRJFJHF-S1" when the antigen
 * line runs a little long, and a nurse reading the paper sees two halves of a number.
 */
const font = process.env.CERTIFICATE_FONT ?? DEFAULT_CERTIFICATE_FONT;

function text(pdf: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cert-'));
  fs.writeFileSync(path.join(dir, 'c.pdf'), pdf);
  execFileSync('pdftotext', ['-layout', path.join(dir, 'c.pdf'), path.join(dir, 'c.txt')]);
  return fs.readFileSync(path.join(dir, 'c.txt'), 'utf8');
}

function facts(caseNo: string, types: string[], host = '127.0.0.1:46795'): CertificateFacts {
  const at = new Date('2026-12-05T01:00:00Z');
  return {
    certificateNo: `${caseNo}-R`,
    caseNo,
    name: '张小明',
    hotelName: 'Hotel One',
    stayStart: at,
    releasedAt: at,
    negatives: types.map((type, i) => ({ sampleId: `${caseNo}-S${i + 1}`, type, takenAt: at, resultAt: at })),
    verificationCode: 'UQXW7-LFM4G',
    verifyUrl: `http://${host}/api/v1/certificates/${caseNo}-R/verify?code=UQXW7-LFM4G`,
    timeZone: 'Asia/Shanghai',
  };
}

const DAILY = Array.from({ length: 14 }, (_, i) => (i % 3 ? 'PCR' : 'antigen'));

test.each([
  ['the case number of the CI failure', 'QCPJCTRJFJHF', ['antigen', 'PCR', 'PCR', 'antigen', 'PCR'], undefined],
  ['the widest letters', 'WWWWWWWWWWWW', ['antigen', 'PCR', 'PCR', 'antigen', 'PCR'], undefined],
  ['a 64-character case number', 'W'.repeat(40) + 'M'.repeat(24), ['antigen', 'PCR', 'PCR'], undefined],
  ['a daily-sampling policy: 14 negatives', 'QCPJCTRJFJHF', DAILY, undefined],
  [
    'a long host in the verify link',
    'QCPJCTRJFJHF',
    ['PCR', 'PCR'],
    'shaodian.command-centre.xigu-district.example.gov.cn',
  ],
])('every number stays whole on one line, on one page: %s', async (_, caseNo, types, host) => {
  const f = facts(caseNo, types, host);
  const out = text(await renderCertificate(f, font));
  const lines = out.split('\n');
  const onOneLine = (s: string) => lines.some((l) => l.includes(s));
  expect(onOneLine(f.certificateNo)).toBe(true);
  expect(lines.some((l) => l.includes(caseNo) && l.includes('Case No.'))).toBe(true);
  for (const n of f.negatives) expect(onOneLine(n.sampleId)).toBe(true);
  expect(onOneLine(f.verificationCode)).toBe(true);
  expect(onOneLine(f.verifyUrl)).toBe(true);
  // Each negative once, with its type in both languages whatever the policy's spelling.
  expect(out.match(/阴性 negative/g)?.length).toBe(types.length);
  expect(out.match(/核酸 PCR/g)?.length ?? 0).toBe(types.filter((t) => t === 'PCR').length);
  expect(out.match(/抗原 antigen/g)?.length ?? 0).toBe(types.filter((t) => t === 'antigen').length);
  // One page, the verification code on it.
  expect(out.split('\f').filter((p) => p.trim()).length).toBe(1);
});
