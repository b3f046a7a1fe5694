import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { defaultPayloadConverter } from '@temporalio/common';

import { ConfigError, loadConfig } from '../../src/config';
import { AesGcmCodec, loadCodec } from '../../src/temporal/codec';

describe('config', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(3000);
    expect(c.TEMPORAL_UI_PORT).toBe(8233);
    expect(c.dataDir).toBe(path.resolve('./data'));
    expect(c.DEFAULT_POLICY).toBe('standard');
  });

  test('a bad variable is named', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'abc', TEMPORAL_ADDRESS: 'nope', CODEC_KEY: 'short' });
    } catch (err) {
      const e = err as ConfigError;
      expect(e.issues.map((i) => i.variable).sort()).toEqual(['CODEC_KEY', 'PORT', 'TEMPORAL_ADDRESS']);
      expect(e.message).toContain('PORT');
    }
  });

  test("the worker's beat against the stall time: out of order is named", () => {
    const issues = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        return (err as ConfigError).issues.map((i) => i.variable);
      }
    };
    expect(issues({})).toEqual([]);
    expect(issues({ API_WORKER_STALL_MS: '3000' })).toEqual(['API_WORKER_LIVENESS_MS']);
    expect(issues({ API_WORKER_STALL_MS: '3000', API_WORKER_LIVENESS_MS: '2000' })).toEqual([]);
    expect(issues({ WORKER_LIVENESS_BEAT_MS: '2000' })).toEqual(['WORKER_LIVENESS_BEAT_MS']);
  });

  test('empty means unset', () => {
    expect(loadConfig({ PORT: '' }).PORT).toBe(3000);
  });
});

describe('payload codec', () => {
  const key = crypto.randomBytes(32);
  const codec = new AesGcmCodec(new Map([['k1', key]]), 'k1');

  test('round trip; ciphertext does not contain the plain text', async () => {
    const payload = defaultPayloadConverter.toPayload({ name: '张三丰', idNumber: '620102198001011234' })!;
    const [enc] = await codec.encode([payload]);
    expect(Buffer.from(enc!.data!).toString('utf8')).not.toContain('620102198001011234');
    const [dec] = await codec.decode([enc!]);
    expect(defaultPayloadConverter.fromPayload(dec!)).toEqual({ name: '张三丰', idNumber: '620102198001011234' });
  });

  test('a tampered payload fails to decode', async () => {
    const [enc] = await codec.encode([defaultPayloadConverter.toPayload('x')!]);
    const data = enc!.data!;
    data[20] = (data[20] ?? 0) ^ 0xff;
    await expect(codec.decode([enc!])).rejects.toThrow();
  });

  test('old keys still decode after a key roll', async () => {
    const [enc] = await codec.encode([defaultPayloadConverter.toPayload('old')!]);
    const rolled = new AesGcmCodec(
      new Map([
        ['k1', key],
        ['k2', crypto.randomBytes(32)],
      ]),
      'k2',
    );
    const [dec] = await rolled.decode([enc!]);
    expect(defaultPayloadConverter.fromPayload(dec!)).toBe('old');
  });

  test('a dev key is generated once into the data dir and reused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codec-'));
    const a = loadCodec({ CODEC_KEY_ID: 'k1', dataDir: dir });
    const b = loadCodec({ CODEC_KEY_ID: 'k1', dataDir: dir });
    expect(a.source).toBe('dev-file');
    expect((fs.statSync(a.file!).mode & 0o777).toString(8)).toBe('600');
    const [enc] = await a.codec.encode([defaultPayloadConverter.toPayload(1)!]);
    expect(defaultPayloadConverter.fromPayload((await b.codec.decode([enc!]))[0]!)).toBe(1);
    fs.rmSync(dir, { recursive: true });
  });
});
