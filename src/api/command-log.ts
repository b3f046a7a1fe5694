import { actorOf, type ApiKey } from './auth';
import type { ApiContext } from './context';

/**
 * Commands on a case are recorded in its history by the workflow (each carries `by`); the
 * commands that touch no case (hotels, rooms, seeding) are recorded here, one structured line
 * each with the key's id, role and name. Ids and states only: never a person's details.
 */
export function recordCommand(
  app: ApiContext,
  key: ApiKey | undefined,
  command: string,
  fields: Record<string, unknown>,
): void {
  app.log.info('command', {
    command,
    // No key: the runtime's X-Admin-Token (admin routes only).
    by: key ? actorOf(key) : { id: 'admin-token', role: 'admin', name: 'runtime admin token' },
    ...fields,
  });
}
