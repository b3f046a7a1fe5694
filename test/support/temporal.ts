import crypto from 'node:crypto';

import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';

import { AesGcmCodec } from '../../src/temporal/codec';

/** The suite's dev server (started by global-setup). */
export const testTemporalAddress = (): string => {
  const a = process.env.TEMPORAL_TEST_ADDRESS;
  if (!a) throw new Error('TEMPORAL_TEST_ADDRESS not set: run through jest (global-setup starts the dev server)');
  return a;
};
export const testNamespace = (): string => process.env.TEMPORAL_TEST_NAMESPACE ?? 'shaodian';

/**
 * A fixed key for tests: histories recorded under test/histories/ are encrypted with it and
 * the replay test decodes them with it. Not a secret: it protects nothing but test data.
 */
export const TEST_CODEC_KEY = Buffer.from('c2hhb2RpYW4tdGVzdC1rZXktbm90LWEtc2VjcmV0ISE=', 'base64');
export const testCodec = (): AesGcmCodec => new AesGcmCodec(new Map([['test', TEST_CODEC_KEY]]), 'test');

/** The SDK's INFO logs (bundle sizes, worker states) drown test output: warnings only. */
function quietSdk(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // already installed in this process
  }
}

export async function connectTest(codec = testCodec()) {
  quietSdk();
  const address = testTemporalAddress();
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection, namespace: testNamespace(), dataConverter: { payloadCodecs: [codec] } });
  return {
    client,
    connection,
    nativeConnection,
    codec,
    async close() {
      await connection.close();
      await nativeConnection.close();
    },
  };
}

export const uniqueQueue = (label: string): string => `test-${label}-${crypto.randomBytes(4).toString('hex')}`;
