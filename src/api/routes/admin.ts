import { createApiKey, keyView, listKeys, revokeKey, type KeyRecord } from '../../auth/keys';
import { DEMO_DISTRICT, seedDemoHotels } from '../../db/demo-hotels';
import type { Role } from '../../domain/types';
import { recordCommand } from '../command-log';
import { HttpProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { CreatedKey, EmptyBody, KeyIdParam, KeyInfo, KeyList, NewKeyBody, SeededDemo } from '../schemas';
import { dbProblem } from './read-helpers';

/**
 * Key management through the running system: while `npm start` owns the embedded database,
 * `npm run keys` cannot open it, so it calls these with the runtime's admin token.
 */
export const adminRoutes: AnyRoute[] = [
  defineRoute({
    method: 'post',
    path: '/api/v1/admin/keys',
    operationId: 'createApiKey',
    summary: 'Create an API key; the key is in this answer only',
    tags: ['admin'],
    access: { kind: 'admin' },
    body: NewKeyBody,
    responses: { 201: { description: 'Created', schema: CreatedKey } },
    async handler({ app, body, res }) {
      try {
        const { identity, key } = await createApiKey(app.db, { ...body, role: body.role as Role });
        const record: KeyRecord = { ...identity, prefix: key.slice(0, 10), createdAt: app.now() };
        res.status(201).json({ key, identity: keyView(record) });
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/admin/keys',
    operationId: 'listApiKeys',
    summary: 'List API keys (never the keys themselves)',
    tags: ['admin'],
    access: { kind: 'admin' },
    responses: { 200: { description: 'Keys, newest first', schema: KeyList } },
    async handler({ app, res }) {
      try {
        res.json({ items: (await listKeys(app.db)).map(keyView) });
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/api/v1/admin/keys/:id',
    operationId: 'revokeApiKey',
    summary: 'Revoke an API key (at once in this process; other API processes within API_KEY_CACHE_SECONDS)',
    tags: ['admin'],
    access: { kind: 'admin' },
    params: KeyIdParam,
    responses: {
      200: { description: 'Revoked', schema: KeyInfo.pick({ id: true, revokedAt: true }) },
      404: { description: 'No such key', contentType: 'application/problem+json' },
    },
    async handler({ app, params, res }) {
      let found;
      try {
        found = await revokeKey(app.db, params.id);
      } catch (err) {
        throw dbProblem(app, err);
      }
      if (!found) throw new HttpProblem(404, `No key ${params.id}`);
      app.keys.forget(params.id);
      res.json({ id: params.id, revokedAt: app.now().toISOString() });
    },
  }),
  defineRoute({
    method: 'post',
    path: '/api/v1/admin/seed-demo',
    operationId: 'seedDemoHotels',
    summary: "Add the demo district's 21 hotels and 1,583 rooms (what `npm run seed` calls while the system runs)",
    description:
      'Safe to repeat: hotels are added by id, a second call adds no rooms and leaves rooms in use alone. ' +
      'Send `{}`.',
    tags: ['admin'],
    access: { kind: 'admin' },
    body: EmptyBody,
    responses: { 200: { description: 'Seeded', schema: SeededDemo } },
    async handler({ app, key, res }) {
      let r;
      try {
        r = await seedDemoHotels(app.db);
      } catch (err) {
        throw dbProblem(app, err);
      }
      recordCommand(app, key, 'seedDemo', {
        district: DEMO_DISTRICT,
        hotels: r.hotels,
        rooms: r.rooms,
        added: r.added,
      });
      res.json({ district: DEMO_DISTRICT, ...r });
    },
  }),
];
