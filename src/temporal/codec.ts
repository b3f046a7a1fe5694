import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec, ValueError } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

const ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const te = new TextEncoder();
const td = new TextDecoder();

/**
 * AES-256-GCM payload codec shared by client and worker: workflow inputs, signals, update
 * arguments, results and query answers are stored in Temporal only as ciphertext, so names,
 * id numbers, phones and addresses never sit in history in clear. Keys are looked up by id
 * so that a new key can be rolled in while histories written under the old one still decode.
 */
export class AesGcmCodec implements PayloadCodec {
  constructor(
    private readonly keys: Map<string, Buffer>,
    private readonly currentKeyId: string,
  ) {
    if (!keys.has(currentKeyId)) throw new ValueError(`codec key ${currentKeyId} missing`);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.currentKeyId)!;
    return payloads.map((p) => ({
      metadata: {
        [METADATA_ENCODING_KEY]: te.encode(ENCODING),
        [KEY_ID]: te.encode(this.currentKeyId),
      },
      data: encrypt(temporal.api.common.v1.Payload.encode(p).finish(), key),
    }));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (!p.metadata || td.decode(p.metadata[METADATA_ENCODING_KEY]) !== ENCODING) return p;
      if (!p.data) throw new ValueError('encrypted payload has no data');
      const keyId = td.decode(p.metadata[KEY_ID]);
      const key = this.keys.get(keyId);
      if (!key) throw new ValueError(`no codec key with id ${keyId}`);
      return temporal.api.common.v1.Payload.decode(decrypt(p.data, key));
    });
  }
}

function encrypt(plain: Uint8Array, key: Buffer): Uint8Array {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function decrypt(data: Uint8Array, key: Buffer): Uint8Array {
  const buf = Buffer.from(data);
  const iv = buf.subarray(0, 12);
  const tag = buf.subarray(buf.length - 16);
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(buf.subarray(12, buf.length - 16)), decipher.final()]);
}

export interface CodecKeyConfig {
  CODEC_KEY?: string;
  CODEC_KEY_ID: string;
  /** Earlier keys, `id:base64,id:base64`, still accepted for decoding. */
  CODEC_OLD_KEYS?: string;
  dataDir: string;
}

/**
 * The configured key, or a dev key generated once into DATA_DIR/codec-dev.key (mode 0600).
 * Losing that file makes the embedded system's history unreadable: production sets CODEC_KEY.
 */
export function loadCodec(cfg: CodecKeyConfig): { codec: AesGcmCodec; source: 'env' | 'dev-file'; file?: string } {
  const keys = new Map<string, Buffer>();
  for (const entry of (cfg.CODEC_OLD_KEYS ?? '').split(',').filter(Boolean)) {
    const [id, b64] = entry.split(':');
    if (id && b64) keys.set(id, Buffer.from(b64, 'base64'));
  }
  if (cfg.CODEC_KEY) {
    keys.set(cfg.CODEC_KEY_ID, Buffer.from(cfg.CODEC_KEY, 'base64'));
    return { codec: new AesGcmCodec(keys, cfg.CODEC_KEY_ID), source: 'env' };
  }
  const file = path.join(cfg.dataDir, 'codec-dev.key');
  fs.mkdirSync(cfg.dataDir, { recursive: true });
  let key: Buffer;
  try {
    key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  } catch {
    key = crypto.randomBytes(32);
    // 'wx' so that two processes starting together cannot each write a different key.
    try {
      fs.writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch {
      key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    }
  }
  if (key.length !== 32) throw new ValueError(`${file} does not hold a 32-byte base64 key`);
  keys.set('dev', key);
  return { codec: new AesGcmCodec(keys, 'dev'), source: 'dev-file', file };
}
