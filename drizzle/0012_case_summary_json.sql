ALTER TABLE "cases" ADD COLUMN "summary_json" text;
--> statement-breakpoint
-- The supervisor list answers each row as the API's case summary (schemas CaseSummary,
-- src/api/routes/read-helpers.ts toSummary): the same fields in the same order, instants as
-- Date#toISOString prints them (UTC, milliseconds, "Z"). Building that JSON for every row of every
-- page cost Postgres about 0.4 ms a page of 50, twice the query's own work (docs/PERFORMANCE.md);
-- it is now built once, when the row is written, by the trigger below, and a page reads it as text.
-- The room's number is a function of the room's id (rooms are never renamed or deleted: a room's
-- id is its hotel's id and its number), so the row's copy cannot go stale.
CREATE OR REPLACE FUNCTION shaodian_case_summary_json(c cases, p_room_no text) RETURNS text
LANGUAGE sql STABLE AS $fn$
  SELECT json_build_object(
    'caseNo', c.case_no, 'workflowId', c.workflow_id, 'district', c.district, 'street', c.street,
    'displayName', c.display_name, 'phase', c.phase, 'colour', c.colour, 'policyName', c.policy_name,
    'hotelId', c.hotel_id, 'roomId', c.room_id, 'roomNo', p_room_no,
    'requestedAt', to_char(c.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'arrivedAt', to_char(c.arrived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'stayStart', to_char(c.stay_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'releaseDue', to_char(c.release_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'nextCheckDue', to_char(c.next_check_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'pendingResults', c.pending_results, 'openEscalations', c.open_escalations,
    'openRedEscalations', c.open_red_escalations, 'inspectionStatus', c.inspection_status,
    'endedAt', to_char(c.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'updatedAt', to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  )::text
$fn$;
--> statement-breakpoint
-- Every writer of a case's row (the transfer's insert, shaodian_record_case, a repair, a test's or
-- the bench's own insert) goes through it: the copy is made from the row as it is stored.
CREATE OR REPLACE FUNCTION shaodian_case_summary_keep() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_room_no text;
BEGIN
  IF NEW.room_id IS NOT NULL THEN
    SELECT r.room_no INTO v_room_no FROM rooms r WHERE r.id = NEW.room_id;
  END IF;
  NEW.summary_json := shaodian_case_summary_json(NEW, v_room_no);
  RETURN NEW;
END
$fn$;
--> statement-breakpoint
CREATE TRIGGER cases_summary_json BEFORE INSERT OR UPDATE ON cases
  FOR EACH ROW EXECUTE FUNCTION shaodian_case_summary_keep();
--> statement-breakpoint
-- The rows already there (one rewrite of the table, at the upgrade: docs/OPERATIONS.md).
UPDATE cases SET summary_json = NULL;
