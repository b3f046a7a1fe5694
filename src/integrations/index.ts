import type { Config } from '../config';
import type { Db } from '../db';
import type { Logger } from '../log';
import { CommunityHttpClient, CommunitySimulator, type CommunityService, type InspectionFixture } from './community';
import { createHotelService, type HotelService } from './hotel';
import type { HttpTarget } from './http';
import { LabHttpClient, LabSimulator, type LabService } from './lab';
import { EscalationNotifier, type NotifyService } from './notify';
import { CallbackPoster, SimulatorScheduler, type CallbackTarget } from './simulator';
import { TransportHttpClient, TransportSimulator, type TransportService } from './transport';

export type { CommunityService, HotelService, LabService, NotifyService, TransportService, CallbackTarget };
export { createHotelService, hotelInputSchema, roomIdOf } from './hotel';
export type { AddHotelResult, HotelInput, HotelVacancy, RoomTransition, RoomView } from './hotel';
export { CommunityHttpClient, CommunitySimulator } from './community';
export { LabHttpClient, LabSimulator } from './lab';
export { TransportHttpClient, TransportSimulator } from './transport';
export { EscalationNotifier } from './notify';

export interface IntegrationDeps {
  db: Db;
  log: Logger;
  /** Where simulators report results. Without it they never call back (tests drive by hand). */
  callback?: CallbackTarget;
  /** Drills and tests: fixed inspection answers by address, and a fixed dice for lab results. */
  simulator?: { communityFixtures?: Record<string, InspectionFixture>; random?: () => number };
}

export interface Integrations {
  hotel: HotelService;
  lab: LabService;
  community: CommunityService;
  transport: TransportService;
  notify: NotifyService;
  /** Which implementation each system uses, for the start banner and /readyz. */
  modes: { lab: Mode; community: Mode; transport: Mode; notify: 'webhook' | 'list-only' };
  /** Cancels pending simulator callbacks (shutdown, end of a test). */
  close(): void;
}
type Mode = 'http' | 'simulator';

/** A URL in config selects the real system's HTTP client; no URL selects the built-in simulator. */
export function createIntegrations(config: Config, deps: IntegrationDeps): Integrations {
  const log = deps.log.child({ component: 'integrations' });
  const scheduler = new SimulatorScheduler();
  const callback = deps.callback
    ? {
        target: deps.callback,
        poster: new CallbackPoster({
          target: deps.callback,
          scheduler,
          log,
          timeoutMs: config.HTTP_TIMEOUT_MS,
        }),
      }
    : undefined;
  const target = (system: string, baseUrl: string, key?: string): HttpTarget => ({
    system,
    baseUrl,
    key,
    timeoutMs: config.HTTP_TIMEOUT_MS,
  });

  const lab: LabService = config.LAB_URL
    ? new LabHttpClient(target('lab', config.LAB_URL, config.LAB_KEY))
    : new LabSimulator({
        delayMs: config.SIM_LAB_DELAY_MS,
        positiveRate: config.SIM_LAB_POSITIVE_RATE,
        scheduler,
        log,
        callback,
        random: deps.simulator?.random,
      });
  const community: CommunityService = config.COMMUNITY_URL
    ? new CommunityHttpClient(target('community', config.COMMUNITY_URL, config.COMMUNITY_KEY))
    : new CommunitySimulator({
        delayMs: config.SIM_COMMUNITY_DELAY_MS,
        failMarker: config.SIM_COMMUNITY_FAIL_MARKER,
        fixtures: deps.simulator?.communityFixtures,
        scheduler,
        log,
        callback,
      });
  const transport: TransportService = config.TRANSPORT_URL
    ? new TransportHttpClient(target('transport', config.TRANSPORT_URL, config.TRANSPORT_KEY))
    : new TransportSimulator({ delayMs: config.SIM_TRANSPORT_DELAY_MS, scheduler, log, callback });
  const notify = new EscalationNotifier({
    db: deps.db,
    log,
    webhook: config.NOTIFY_WEBHOOK_URL ? target('notify', config.NOTIFY_WEBHOOK_URL) : undefined,
  });

  return {
    hotel: createHotelService(deps.db),
    lab,
    community,
    transport,
    notify,
    modes: {
      lab: config.LAB_URL ? 'http' : 'simulator',
      community: config.COMMUNITY_URL ? 'http' : 'simulator',
      transport: config.TRANSPORT_URL ? 'http' : 'simulator',
      notify: config.NOTIFY_WEBHOOK_URL ? 'webhook' : 'list-only',
    },
    close: () => scheduler.close(),
  };
}
