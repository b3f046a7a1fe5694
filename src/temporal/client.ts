import { Client, Connection } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';

export interface TemporalClientOptions {
  address: string;
  namespace: string;
  codec: PayloadCodec;
}

/**
 * A lazily connecting client: the API starts and answers /healthz and /readyz even while
 * the cluster is unreachable, and connects on first use.
 */
export function createTemporalClient(opts: TemporalClientOptions): { client: Client; connection: Connection } {
  const connection = Connection.lazy({ address: opts.address, connectTimeout: 5000 });
  const client = new Client({
    connection,
    namespace: opts.namespace,
    dataConverter: { payloadCodecs: [opts.codec] },
  });
  return { client, connection };
}

/** Reachable and our namespace exists; throws with the reason otherwise. */
export async function checkTemporal(connection: Connection, namespace: string, timeoutMs = 2000): Promise<void> {
  await connection.withDeadline(Date.now() + timeoutMs, () =>
    connection.workflowService.describeNamespace({ namespace }),
  );
}
