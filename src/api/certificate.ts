import crypto from 'node:crypto';
import fs from 'node:fs';

import PDFDocument from 'pdfkit';

import { localDate } from './routes/read-helpers';

/**
 * The release-from-medical-observation certificate (解除医学观察证明): a one-page PDF in Chinese
 * with an English line. It is the only place outside the encrypted history where the person's
 * full name appears; it is rendered on request and never stored.
 */
export interface CertificateFacts {
  certificateNo: string;
  caseNo: string;
  name: string;
  hotelName: string | null;
  stayStart: Date | null;
  releasedAt: Date;
  /** The negatives the release rests on: samples really taken, oldest first. */
  negatives: { sampleId: string; type: string; takenAt: Date | null; resultAt: Date | null }[];
  verificationCode: string;
  verifyUrl: string;
  timeZone: string;
}

/** Where the CJK font is looked for (Debian fonts-wqy-microhei; CERTIFICATE_FONT overrides). */
export const DEFAULT_CERTIFICATE_FONT = '/usr/share/fonts/truetype/wqy/wqy-microhei.ttc';

/**
 * The verification code printed on a certificate: an HMAC of what it certifies, keyed from the
 * deployment's API HMAC key. Ten base32 characters (50 bits) in two groups; recomputed to check.
 */
export function verificationCode(
  hmacKey: Buffer,
  c: { certificateNo: string; caseNo: string; releasedAt: Date; negatives: number },
): string {
  const key = Buffer.from(crypto.hkdfSync('sha256', hmacKey, '', 'shaodian/certificate', 32));
  const mac = crypto
    .createHmac('sha256', key)
    .update(`${c.certificateNo}|${c.caseNo}|${c.releasedAt.toISOString()}|${c.negatives}`)
    .digest();
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  let bits = 0n;
  for (const b of mac.subarray(0, 7)) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < 10; i++) out += alphabet[Number((bits >> BigInt(5 * i)) & 31n)];
  return `${out.slice(0, 5)}-${out.slice(5)}`;
}

export function codesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toUpperCase().replace(/[^A-Z0-9]/g, ''));
  const y = Buffer.from(b.toUpperCase().replace(/[^A-Z0-9]/g, ''));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

/** Sample types are policy data ('PCR', 'antigen'); looked up without regard to case. */
const SAMPLE_TYPE: Record<string, string> = { pcr: '核酸 PCR', antigen: '抗原 antigen' };

export function renderCertificate(f: CertificateFacts, fontPath: string): Promise<Buffer> {
  if (!fs.existsSync(fontPath)) {
    throw new Error(
      `certificate font not found at ${fontPath} (apt-get install fonts-wqy-microhei, or CERTIFICATE_FONT)`,
    );
  }
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({
      size: 'A4',
      margin: 56,
      info: {
        Title: `解除医学观察证明 ${f.certificateNo}`,
        Subject: 'Certificate of release from medical observation',
      },
    });
    const chunks: Buffer[] = [];
    doc.on('data', (c: Buffer) => chunks.push(c));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    doc.registerFont('cjk', fontPath, 'WenQuanYiMicroHei');
    doc.font('cjk');

    const day = (d: Date | null) => (d ? localDate(d, f.timeZone) : '—');
    doc.fontSize(22).text('解除医学观察证明', { align: 'center' });
    doc.moveDown(0.2).fontSize(12).text('Certificate of Release from Medical Observation', { align: 'center' });
    doc.moveDown(1.5);

    // A number (a case, a certificate, a sample) must never be split across lines: pdfkit breaks
    // at a hyphen, and a case number may be up to 64 characters. A line that carries one is set
    // in the largest size, at most its own, that fits the width, so it does not wrap.
    const width = doc.page.width - doc.page.margins.left - doc.page.margins.right;
    /** The scale (at most 1) at which these parts, each at its own size, fit on one line. */
    const fit = (parts: [size: number, text: string][], indent = 0) => {
      const at = (k: number) => parts.reduce((w, [size, text]) => w + doc.fontSize(size * k).widthOfString(text), 0);
      let k = 1;
      while (k > 0.5 && at(k) > width - indent - 2) k -= 0.025;
      return k;
    };
    /** A label and its value; `number` lines are fitted, others (a name, a hotel) may wrap. */
    const line = (zh: string, en: string, value: string, number = false) => {
      const label = `${zh}  ${en}:  `;
      const k = number
        ? fit([
            [12, label],
            [13, value],
          ])
        : 1;
      doc
        .fontSize(12 * k)
        .text(label, { continued: true })
        .fontSize(13 * k)
        .text(value);
      doc.moveDown(0.4);
    };
    line('证明编号', 'Certificate No.', f.certificateNo, true);
    line('案例编号', 'Case No.', f.caseNo, true);
    line('姓名', 'Name', f.name);
    line('隔离点', 'Quarantine point', f.hotelName ?? '—');
    line('隔离期间', 'Period', `${day(f.stayStart)} 至 to ${day(f.releasedAt)}`, true);
    line('解除日期', 'Released on', day(f.releasedAt), true);

    doc.moveDown(0.6).fontSize(12).text('解除依据 Basis of release:');
    doc.moveDown(0.3);
    if (!f.negatives.length) doc.fontSize(11).text('—');
    // One line per negative, fitted: a daily-sampling policy lists 14 or more and the page holds them.
    f.negatives.forEach((n, i) => {
      const type = SAMPLE_TYPE[n.type.toLowerCase()] ?? n.type;
      const text = `${i + 1}. ${n.sampleId}  ${type}  采样 taken ${day(n.takenAt)}  结果 result ${day(n.resultAt)}  阴性 negative`;
      doc.fontSize(11 * fit([[11, text]], 16)).text(text, { indent: 16 });
    });

    doc.moveDown(1.2);
    doc
      .fontSize(12)
      .text('兹证明上述人员已完成集中隔离医学观察，经检测符合解除条件，予以解除集中隔离医学观察。', { align: 'left' });
    doc
      .moveDown(0.3)
      .fontSize(10)
      .text(
        'This certifies that the person named above has completed centralized medical observation, meets the conditions for release, and is released.',
      );

    doc.moveDown(1.5);
    doc.fontSize(12).text(`验证码 Verification code:  ${f.verificationCode}`);
    const verify = `核验 Verify: ${f.verifyUrl}`;
    doc
      .moveDown(0.2)
      .fontSize(9 * fit([[9, verify]]))
      .text(verify);
    doc.end();
  });
}
