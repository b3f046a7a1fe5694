import fs from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';

import { chromium, type Browser, type Page } from 'playwright-core';
import request from 'supertest';

import { caseEvents } from '../../src/db/schema';
import { freePort } from '../support/ports';
import { createHarness, seedReadModel, type Harness } from './harness';

/**
 * The dashboard in a real browser (Debian chromium) against a running app with seeded
 * read-model rows: the numbers on the page must be the API's numbers. Leaves a screenshot
 * in test/artifacts/.
 */
// Code passed to page.evaluate runs in the browser; these are its globals (the project has no DOM lib).
declare const sessionStorage: Record<string, unknown>;
declare const document: {
  querySelector(s: string): { textContent: string | null } | null;
  querySelectorAll(s: string): { length: number };
  body: { classList: { add(c: string): void; remove(c: string): void } };
};
declare const localStorage: { getItem(k: string): string | null } & Record<string, unknown>;

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', 'artifacts');

let h: Harness;
let server: Server;
let base: string;
let browser: Browser;
let page: Page;

// Skipped only on a developer's machine without Chromium; in CI (which installs it) a missing
// browser fails the run instead of passing it unseen.
const haveChromium = fs.existsSync(CHROMIUM) || Boolean(process.env.CI);
if (!haveChromium) console.warn(`dashboard browser test skipped: ${CHROMIUM} missing (apt-get install -y chromium)`);
const maybe = haveChromium ? describe : describe.skip;

maybe('/dashboard in chromium', () => {
  beforeAll(async () => {
    h = await createHarness({ label: 'dash' });
    await seedReadModel(h.db);
    const at = (min: number) => new Date(Date.now() - min * 60_000);
    await h.db.insert(caseEvents).values([
      {
        caseNo: 'QCSEED000002',
        seq: 1,
        actor: 'workflow',
        actorRole: 'system',
        actorName: 'Shaodian',
        kind: 'intake',
        at: at(300),
      },
      {
        caseNo: 'QCSEED000002',
        seq: 2,
        actor: 'k-nurse',
        actorRole: 'medical',
        actorName: 'Nurse Wang',
        kind: 'health_check',
        payload: { checkId: 'c-1', fever: true },
        at: at(200),
      },
      {
        caseNo: 'QCSEED000002',
        seq: 3,
        actor: 'k-sup',
        actorRole: 'supervisor',
        actorName: 'Supervisor Li',
        kind: 'colour_changed',
        payload: { from: 'yellow', to: 'red' },
        at: at(100),
      },
    ]);
    const port = await freePort();
    server = await new Promise((resolve) => {
      const s = h.app.listen(port, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--headless',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1100 }, acceptDownloads: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    await h?.close();
  });

  const text = (testId: string) => page.locator(`[data-testid="${testId}"]`).first().innerText();

  test('asks for a key, then shows the API’s numbers, refreshes, searches and switches language', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      // Refused keys and unknown case numbers are expected HTTP answers, not page errors.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text());
    });

    await page.goto(`${base}/dashboard?refresh=1000`);
    await page.locator('[data-testid="key-input"]').waitFor({ state: 'visible' });

    // A wrong role is refused with a message, and the key is not kept.
    await page.fill('[data-testid="key-input"]', h.keys.lab);
    await page.click('[data-testid="key-submit"]');
    await page
      .locator('#login-error')
      .filter({ hasText: /supervisor/ })
      .waitFor();

    await page.fill('[data-testid="key-input"]', h.keys.supervisor);
    await page.click('[data-testid="key-submit"]');
    await page.waitForSelector('body[data-loaded]');

    const summary = (await request(h.app).get('/api/v1/summary').set(h.auth('supervisor'))).body;
    const hotels = (await request(h.app).get('/api/v1/hotels').set(h.auth('supervisor'))).body.items;
    const escalations = (await request(h.app).get('/api/v1/escalations').set(h.auth('supervisor'))).body.items;

    expect(await text('total-active')).toBe(String(summary.activeCases));
    expect(await text('total-free')).toBe(String(summary.hotels.free));
    expect(await text('total-occupied')).toBe(String(summary.hotels.occupied));
    expect(await text('total-disinfection')).toBe(String(summary.hotels.awaitingDisinfection));
    expect(await text('total-escalations')).toBe(String(summary.openEscalations.total));
    expect(await text('total-red')).toBe(String(summary.openEscalations.red));

    for (const hotel of hotels) {
      const row = page.locator(`[data-testid="hotel-${hotel.id}"]`);
      expect(await row.locator('[data-testid="hotel-free"]').innerText()).toBe(String(hotel.free));
      expect(await row.locator('[data-testid="hotel-occupied"]').innerText()).toBe(String(hotel.occupied));
      expect(await row.locator('[data-testid="hotel-disinfection"]').innerText()).toBe(
        String(hotel.awaitingDisinfection),
      );
    }
    expect(await page.locator('[data-testid^="hotel-H"]').count()).toBe(hotels.length);

    for (const [phase, byColour] of Object.entries(summary.byPhaseColour as Record<string, Record<string, number>>)) {
      for (const [colour, n] of Object.entries(byColour))
        expect(await text(`phase-${phase}-${colour}`)).toBe(String(n));
      expect(await text(`phase-${phase}-total`)).toBe(String(summary.phases[phase]));
    }

    const escIds = await page
      .locator('[data-testid="escalation-row"]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));
    expect(escIds).toEqual(escalations.map((e: { id: string }) => e.id));
    // The grouped view: one row per kind and level, with the API summary's counts.
    const groups = (await request(h.app).get('/api/v1/escalations/summary').set(h.auth('supervisor'))).body.groups;
    expect(groups.length).toBeGreaterThan(0);
    const shown = await page
      .locator('[data-testid="escalation-group"]')
      .evaluateAll((rows) =>
        rows.map((r) => [
          r.getAttribute('data-kind'),
          r.getAttribute('data-level'),
          r.querySelector('[data-testid="escalation-group-count"]')!.textContent,
        ]),
      );
    expect(shown).toEqual(
      groups.map((g: { kind: string; level: string; count: number }) => [g.kind, g.level, String(g.count)]),
    );

    expect(await text('due-today-count')).toBe(String(summary.releasesDue.today.length));
    expect(await text('due-tomorrow-count')).toBe(String(summary.releasesDue.tomorrow.length));
    const dueCases = await page
      .locator('[data-testid="due-row"]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-case')));
    expect(dueCases).toEqual(
      [...summary.releasesDue.today, ...summary.releasesDue.tomorrow].map((r: { caseNo: string }) => r.caseNo),
    );

    // It refreshes by itself: a room freed in the database shows up without a reload.
    const before = Number(await text('total-free'));
    await h.database.db.execute(`update rooms set state = 'free' where id = 'H1-103'` as never);
    await page.waitForFunction(
      (n) => document.querySelector('[data-testid="total-free"]')?.textContent === String(n),
      before + 1,
      {
        timeout: 10_000,
      },
    );

    // Search: the seeded case has no workflow, so the read model answers and says so.
    await page.fill('[data-testid="search-input"]', 'QCSEED000002');
    await page.click('[data-testid="search-submit"]');
    await page.waitForSelector('[data-testid="search-result"][data-source]', { timeout: 10_000 });
    expect(await text('search-result')).toContain('QCSEED000002');
    // The case's story: the rows of its event log, in the API's order, with who did it.
    await page.locator('[data-testid="story-row"]').first().waitFor({ timeout: 10_000 });
    const story = await page
      .locator('[data-testid="story-row"]')
      .evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-kind'), r.children[2]!.textContent]));
    const events = (
      await request(h.app).get('/api/v1/cases/QCSEED000002/events').set(h.auth('supervisor'))
    ).body.items.map((e: { kind: string; actor: { name: string; role: string } }) => [
      e.kind,
      `${e.actor.name} (${e.actor.role})`,
    ]);
    expect(events.length).toBe(3);
    expect(story).toEqual(events);
    await page.fill('[data-testid="search-input"]', 'QCNOSUCHCASE');
    await page.click('[data-testid="search-submit"]');
    await page.locator('[data-testid="search-result"] .error').waitFor();

    // The wave: the charts draw the API's day-by-day numbers; the table under them says the same.
    await page.waitForSelector('body[data-wave]');
    const wave = (await request(h.app).get('/api/v1/reports/wave?days=calendar').set(h.auth('supervisor'))).body;
    expect(wave.days).toHaveLength(14);
    const seriesOf = (k: string) => wave.days.map((d: Record<string, number>) => d[k]);
    const drawn = async (id: string) => JSON.parse((await page.getAttribute(`[data-testid="${id}"]`, 'data-series'))!);
    expect(await drawn('chart-flow')).toEqual([
      seriesOf('arrivals'),
      seriesOf('releases'),
      seriesOf('hospitalTransfers'),
    ]);
    expect(await drawn('chart-occupancy')).toEqual([seriesOf('occupiedAtEnd'), wave.days.map(() => wave.capacity)]);
    expect(await drawn('chart-tests')).toEqual([
      seriesOf('pcrTaken'),
      seriesOf('pcrPositive'),
      seriesOf('openEscalationsAtEnd'),
    ]);
    expect(await page.locator('[data-testid="chart-flow"] canvas').count()).toBe(1);
    const waveRows = await page
      .locator('[data-testid="wave-row"]')
      .evaluateAll((rows) =>
        rows.map((r) => [r.getAttribute('data-day'), r.querySelector('[data-col="releases"]')!.textContent]),
      );
    expect(waveRows).toEqual(wave.days.map((d: { label: string; releases: number }) => [d.label, String(d.releases)]));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator('#wave').screenshot({ path: path.join(ARTIFACTS, 'wave.png') });

    // The evening report of today: the page's numbers are the API's, the CSV it downloads is the API's.
    await page.waitForSelector('body[data-report]');
    const day = await page.getAttribute('body', 'data-report');
    const daily = (await request(h.app).get(`/api/v1/reports/daily?date=${day}`).set(h.auth('supervisor'))).body;
    expect(daily.total.releases).toBeGreaterThan(0); // the seeded release of today
    const reportRows = await page
      .locator('[data-testid="report-row"]')
      .evaluateAll((rows) =>
        rows.map((r) => [
          r.getAttribute('data-hotel'),
          Object.fromEntries(
            [...r.querySelectorAll('td[data-col]')].map((td) => [td.getAttribute('data-col'), td.textContent]),
          ),
        ]),
      );
    expect(reportRows).toEqual(
      daily.hotels.map((x: Record<string, unknown>) => [
        x.hotelId,
        Object.fromEntries(
          Object.entries(x)
            .filter(([k]) => !['hotelId', 'name', 'exceptions'].includes(k))
            .map(([k, v]) => [k, String(v)]),
        ),
      ]),
    );
    expect(await page.locator('[data-testid="report-total"] td[data-col="releases"]').innerText()).toBe(
      String(daily.total.releases),
    );
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="report-csv"]')]);
    const csvFile = await download.path();
    const csvFromApi = (
      await request(h.app).get(`/api/v1/reports/daily?date=${day}&format=csv`).set(h.auth('supervisor'))
    ).text;
    expect(fs.readFileSync(csvFile, 'utf8')).toBe(csvFromApi);
    // On paper: the report alone.
    await page.evaluate(() => document.body.classList.add('printing-report'));
    await page.emulateMedia({ media: 'print' });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'evening-report-print.png'), fullPage: true });
    expect(await page.locator('[data-testid="total-active"]').isVisible()).toBe(false);
    expect(await page.locator('[data-testid="report-table"]').isVisible()).toBe(true);
    await page.emulateMedia({ media: 'screen' });
    await page.evaluate(() => document.body.classList.remove('printing-report'));

    // A hotel floor by floor: every room in its state, and a room marked disinfected from there.
    await page.click('[data-testid="open-floors-H1"]');
    await page.waitForSelector('#floors[data-loaded^="H1:"]');
    const roomsApi = (await request(h.app).get('/api/v1/hotels/H1/rooms').set(h.auth('supervisor'))).body.items;
    const tiles = await page
      .locator('[data-testid="floors-grid"] .room')
      .evaluateAll((els) => els.map((e) => [e.getAttribute('data-testid'), e.getAttribute('data-state')]));
    expect(tiles.sort()).toEqual(roomsApi.map((r: { id: string; state: string }) => [`room-${r.id}`, r.state]).sort());
    const dirty = roomsApi.find((r: { state: string }) => r.state === 'awaiting_disinfection');
    expect(dirty).toBeDefined();
    await page.click(`[data-testid="room-${dirty.id}"]`);
    await page.click('[data-testid="room-disinfected"]');
    await page.waitForSelector(`[data-testid="room-${dirty.id}"][data-state="free"]`);
    const after = (await request(h.app).get('/api/v1/hotels/H1/rooms').set(h.auth('supervisor'))).body.items;
    expect(after.find((r: { id: string }) => r.id === dirty.id).state).toBe('free');
    // Keyboard: the rooms are buttons, reachable and usable without a mouse.
    await page.focus(`[data-testid="room-${dirty.id}"]`);
    await page.keyboard.press('Enter');
    await page.locator('[data-testid="room-out-of-service"]').waitFor();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator('#floors').screenshot({ path: path.join(ARTIFACTS, 'hotel-floors.png') });

    // 中文 by default; one click for English.
    expect(await page.locator('h1').innerText()).toContain('指挥中心');
    await page.click('[data-testid="lang-toggle"]');
    expect(await page.locator('h1').innerText()).toContain('Command centre');
    expect(await page.locator('[data-testid="phase-OBSERVATION"] td').first().innerText()).toBe('Observation');
    // The sections drawn from their own calls follow the language too.
    await page.waitForFunction(() => document.querySelector('#report-head')?.textContent?.includes('Arrivals'));
    await page.waitForFunction(() => document.querySelector('#wave-head')?.textContent?.includes('Open escalations'));
    await page.waitForFunction(() => document.querySelector('#floors-grid')?.textContent?.includes('Floor'));
    await page.click('[data-testid="lang-toggle"]');

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.click('[data-testid="lang-toggle"]');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-en.png'), fullPage: true });

    // The key lives in sessionStorage only.
    expect(
      await page.evaluate(() => Object.keys(localStorage).filter((k) => localStorage.getItem(k)?.startsWith('sd_'))),
    ).toEqual([]);
    expect(errors).toEqual([]);
  }, 90_000);

  test('/docs is Swagger UI from node_modules: every operation of the document, no CSP error, no key stored', async () => {
    const docsPage = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
    const problems: string[] = [];
    docsPage.on('pageerror', (e) => problems.push(e.message));
    docsPage.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    const external: string[] = [];
    docsPage.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) external.push(r.url());
    });
    await docsPage.goto(`${base}/docs`);
    await docsPage.waitForSelector('body[data-loaded]', { timeout: 20_000 });
    const doc = (await request(h.app).get('/openapi.json')).body as {
      paths: Record<string, Record<string, { operationId: string; tags?: string[] }>>;
    };
    const ops = Object.values(doc.paths).flatMap((byMethod) => Object.values(byMethod));
    // An operation appears once under each of its tags.
    const shown = ops.reduce((n, op) => n + Math.max(1, op.tags?.length ?? 0), 0);
    await docsPage.waitForFunction((n) => document.querySelectorAll('.opblock').length >= n, shown);
    const ids = await docsPage.locator('.opblock').evaluateAll((els) => els.map((e) => e.id));
    expect(ids).toHaveLength(shown);
    for (const op of ops) expect(ids.some((id) => id.endsWith(`-${op.operationId}`))).toBe(true);
    expect(await docsPage.locator('.opblock-summary-path', { hasText: '/api/v1/reports/wave' }).count()).toBe(1);
    expect(problems).toEqual([]);
    expect(external).toEqual([]);
    expect(
      await docsPage.evaluate(() => [...Object.values(localStorage), ...Object.values(sessionStorage)].join(' ')),
    ).not.toMatch(/sd_/);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await docsPage.screenshot({ path: path.join(ARTIFACTS, 'docs.png') });
    await docsPage.close();
  }, 60_000);
  test("the district's policy: the current version and its history, as the API has them", async () => {
    const { version: _v, ...doc } = (
      await request(h.app).get('/api/v1/districts/D1/policies/1').set(h.auth('supervisor'))
    ).body.policy as Record<string, unknown>;
    const created = await request(h.app)
      .post('/api/v1/districts/D1/policies')
      .set(h.auth('supervisor'))
      .send({
        note: 'June 2022: seven days',
        policy: { ...doc, name: 'seven-days', stayDays: 7, sampling: { ...(doc.sampling as object), days: [1, 5, 6] } },
      });
    expect(created.status).toBe(201);
    await page.goto(`${base}/dashboard?refresh=1000`);
    await page.waitForSelector('body[data-loaded]');
    await page.locator('[data-testid="policy-history"] tbody tr').nth(1).waitFor();
    const current = await text('policy-current');
    expect(current).toContain('v2 seven-days');
    expect(current).toContain('1, 5, 6');
    const rows = await page.locator('[data-testid="policy-history"] tbody tr').allInnerTexts();
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('June 2022: seven days');
    expect(rows[1]).toMatch(/v1\s+drill/);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator('#policy').screenshot({ path: path.join(ARTIFACTS, 'policy.png') });
  }, 60_000);
});
