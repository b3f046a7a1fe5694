/**
 * The baseline's worker, in a process of its own (as the system's worker is): the bench
 * workflows on a task queue of their own, with the same concurrency settings as ours.
 * argv[2] is a JSON object: { address, namespace, taskQueue, maxCachedWorkflows, maxConcurrentWorkflowTasks,
 * codecKey? }: with codecKey (base64, 32 bytes) its payloads go through the project's AES-GCM codec
 * (the health check's ladder, bench/ladder-server.ts).
 */
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';

import { AesGcmCodec } from '../src/temporal/codec';
import { memoryNow, serveIpc } from './lib';

interface Args {
  address: string;
  namespace: string;
  taskQueue: string;
  maxCachedWorkflows: number;
  maxConcurrentWorkflowTasks: number;
  codecKey?: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  let worker: Worker;
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect({ address: args.address });
    worker = await Worker.create({
      connection,
      namespace: args.namespace,
      taskQueue: args.taskQueue,
      workflowsPath: require.resolve('./baseline-workflows'),
      maxCachedWorkflows: args.maxCachedWorkflows,
      maxConcurrentWorkflowTaskExecutions: args.maxConcurrentWorkflowTasks,
      ...(args.codecKey
        ? {
            dataConverter: {
              payloadCodecs: [new AesGcmCodec(new Map([['bench', Buffer.from(args.codecKey, 'base64')]]), 'bench')],
            },
          }
        : {}),
    });
  } catch (err) {
    process.send?.({ type: 'failed', error: (err as Error).message });
    process.exit(1);
  }
  const running = worker.run();
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => undefined);
    await connection.close();
    process.exit(0);
  };
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stop') void stop();
  });
  serveIpc({ memory: async () => memoryNow() });
  process.send?.({ type: 'ready', pid: process.pid });
}

void main();
