ALTER TABLE "cases" ADD COLUMN "summary_json" text;--> statement-breakpoint
CREATE INDEX "cases_summary_missing" ON "cases" USING btree ("case_no") WHERE summary_json is null;
--> statement-breakpoint
-- The supervisor list answers each row as the API's case summary (schemas CaseSummary,
-- src/api/routes/read-helpers.ts toSummary) in the very bytes JSON.stringify(toSummary(row)) gives:
-- the same fields in the same order, no spaces, strings escaped as JSON.stringify escapes them
-- (to_json), instants as Date#toISOString prints them (UTC, milliseconds, "Z"). Building a JSON
-- object for every row of every page cost Postgres about 0.4 ms a page of 50, twice the query's own
-- work (docs/PERFORMANCE.md); it is now built once, when the row is written, by the trigger below,
-- and a page reads it as text.
--
-- All but the room's number, which belongs to `rooms` and is joined in when a page is read: the
-- copy holds chr(1) in its place, a character JSON text never holds raw (to_json escapes every
-- control character), and the list replaces it with the number. So the copy depends on the row
-- alone and no change to a room can leave it stale.
CREATE OR REPLACE FUNCTION shaodian_case_summary_json(c cases) RETURNS text
LANGUAGE sql STABLE AS $fn$
  SELECT
    '{"caseNo":' || coalesce(to_json(c.case_no)::text, 'null') ||
    ',"workflowId":' || coalesce(to_json(c.workflow_id)::text, 'null') ||
    ',"district":' || coalesce(to_json(c.district)::text, 'null') ||
    ',"street":' || coalesce(to_json(c.street)::text, 'null') ||
    ',"displayName":' || coalesce(to_json(c.display_name)::text, 'null') ||
    ',"phase":' || coalesce(to_json(c.phase)::text, 'null') ||
    ',"colour":' || coalesce(to_json(c.colour)::text, 'null') ||
    ',"policyName":' || coalesce(to_json(c.policy_name)::text, 'null') ||
    ',"hotelId":' || coalesce(to_json(c.hotel_id)::text, 'null') ||
    ',"roomId":' || coalesce(to_json(c.room_id)::text, 'null') ||
    ',"roomNo":' || chr(1) ||
    ',"requestedAt":' || coalesce('"' || to_char(c.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') ||
    ',"arrivedAt":' || coalesce('"' || to_char(c.arrived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') ||
    ',"stayStart":' || coalesce('"' || to_char(c.stay_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') ||
    ',"releaseDue":' || coalesce('"' || to_char(c.release_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') ||
    ',"nextCheckDue":' || coalesce('"' || to_char(c.next_check_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') ||
    ',"pendingResults":' || coalesce(c.pending_results::text, 'null') ||
    ',"openEscalations":' || coalesce(c.open_escalations::text, 'null') ||
    ',"openRedEscalations":' || coalesce(c.open_red_escalations::text, 'null') ||
    ',"inspectionStatus":' || coalesce(to_json(c.inspection_status)::text, 'null') ||
    ',"endedAt":' || coalesce('"' || to_char(c.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') ||
    ',"updatedAt":' || coalesce('"' || to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"', 'null') || '}'
$fn$;
--> statement-breakpoint
-- Every writer of a case's row (the transfer's insert, shaodian_record_case, a repair, a test's or
-- the bench's own insert) goes through it: the copy is made from the row as it is stored.
CREATE OR REPLACE FUNCTION shaodian_case_summary_keep() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.summary_json := shaodian_case_summary_json(NEW);
  RETURN NEW;
END
$fn$;
--> statement-breakpoint
CREATE TRIGGER cases_summary_json BEFORE INSERT OR UPDATE ON cases
  FOR EACH ROW EXECUTE FUNCTION shaodian_case_summary_keep();
--> statement-breakpoint
-- ALWAYS: a session that turns replica triggers off (session_replication_role = replica, as a
-- restore or a logical replica does) still keeps the copy with the row.
ALTER TABLE cases ENABLE ALWAYS TRIGGER cases_summary_json;
