ALTER TABLE "cases" ADD COLUMN "written_in_task" boolean;
--> statement-breakpoint
-- Which kind of write made a v5/v6 case's row: inside a workflow task (the worker's sink marks it
-- true) or by the case's `recordCase` activity (the activity marks it false). A repair may replace a
-- write of its own task (0008), but an in-task repair must not replace the activity write of the
-- same task: a fresh copy of the case can write in the task and then, finishing, by activity, in
-- one task; if the first write stalls past its deadline (reported, but nothing is handed any more)
-- and lands after the activity's, it would put the row back and delete what the activity wrote.
-- The function is 0009's with that one rule and column more. Writes of a worker of the build
-- before (during an upgrade) carry no mark (null) and keep 0009's rules, so the retry of an old
-- worker's failed task still replaces what that attempt wrote.
CREATE OR REPLACE FUNCTION shaodian_record_case(w jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
  v_row jsonb := w->'row';
  v_case text := w->'row'->>'case_no';
  v_ins jsonb := w->'inspection';
  v_repair jsonb := w->'repair';
  v_fresh boolean;
BEGIN
  INSERT INTO cases AS c (case_no, workflow_id, request_id, district, street, display_name, phase, colour,
    policy_name, hotel_id, room_id, requested_at, arrived_at, stay_start, release_due, next_check_due,
    pending_results, open_escalations, open_red_escalations, inspection_status, ended_at, state_version,
    written_fence, check_schedule, written_in_task)
  SELECT x.case_no, x.workflow_id, x.request_id, x.district, x.street, x.display_name, x.phase, x.colour,
    x.policy_name, x.hotel_id, x.room_id, x.requested_at, x.arrived_at, x.stay_start, x.release_due,
    x.next_check_due, x.pending_results, x.open_escalations, x.open_red_escalations, x.inspection_status,
    x.ended_at, x.state_version, x.written_fence, x.check_schedule,
    CASE WHEN x.written_fence IS NULL THEN NULL ELSE x.written_in_task END
  FROM jsonb_to_record(v_row) AS x(case_no text, workflow_id text, request_id text, district text, street text,
    display_name text, phase text, colour text, policy_name text, hotel_id text, room_id text,
    requested_at timestamptz, arrived_at timestamptz, stay_start timestamptz, release_due timestamptz,
    next_check_due timestamptz, pending_results integer, open_escalations integer, open_red_escalations integer,
    inspection_status text, ended_at timestamptz, state_version integer, written_fence bigint, check_schedule jsonb,
    written_in_task boolean)
  ON CONFLICT (case_no) DO UPDATE SET
    workflow_id = excluded.workflow_id, request_id = excluded.request_id, district = excluded.district,
    street = excluded.street, display_name = excluded.display_name, phase = excluded.phase,
    colour = excluded.colour, policy_name = excluded.policy_name, hotel_id = excluded.hotel_id,
    room_id = excluded.room_id, requested_at = excluded.requested_at, arrived_at = excluded.arrived_at,
    stay_start = excluded.stay_start, release_due = excluded.release_due,
    next_check_due = excluded.next_check_due, pending_results = excluded.pending_results,
    open_escalations = excluded.open_escalations, open_red_escalations = excluded.open_red_escalations,
    inspection_status = excluded.inspection_status, ended_at = excluded.ended_at,
    state_version = excluded.state_version, written_fence = coalesce(excluded.written_fence, c.written_fence),
    check_schedule = excluded.check_schedule,
    written_in_task = CASE WHEN excluded.written_fence IS NULL THEN c.written_in_task ELSE excluded.written_in_task END,
    updated_at = now()
  WHERE CASE
    -- A v5 case's writes made in its tasks go in the order of its tasks: a write from a later task
    -- (or the retry of one that never completed) replaces an earlier one whatever their versions;
    -- two writes of one task, the newer version. A repair write (the first of a worker that took
    -- the case up afresh) replaces one of its own task too: that is the retry of a task that failed.
    -- But an in-task repair never replaces the case's write by activity of the same task: that
    -- activity was scheduled by the task's completion, after every write made in it, and carries
    -- their content; such a repair landing later is a write that outlived its deadline.
    WHEN excluded.written_fence IS NOT NULL AND c.written_fence IS NOT NULL THEN
      excluded.written_fence > c.written_fence
      OR (excluded.written_fence = c.written_fence
        AND ((v_repair IS NOT NULL AND NOT (excluded.written_in_task IS TRUE AND c.written_in_task IS FALSE))
          OR c.state_version <= excluded.state_version))
    ELSE c.state_version <= excluded.state_version
  END;
  v_fresh := FOUND;

  -- In the order the write lists them (the events feed reads by id). Only the newest write replaces
  -- what is stored; an older one adds what is missing, as DO NOTHING did.
  IF v_fresh THEN
    INSERT INTO case_events (case_no, seq, actor, actor_role, actor_name, kind, payload, at)
    SELECT v_case, (e->>'seq')::integer, e->>'actor', e->>'actor_role', e->>'actor_name', e->>'kind',
      coalesce(e->'payload', '{}'::jsonb), (e->>'at')::timestamptz
    FROM jsonb_array_elements(coalesce(w->'events', '[]'::jsonb)) WITH ORDINALITY AS t(e, n)
    ORDER BY t.n
    ON CONFLICT (case_no, seq) DO UPDATE SET
      actor = excluded.actor, actor_role = excluded.actor_role, actor_name = excluded.actor_name,
      kind = excluded.kind, payload = excluded.payload, at = excluded.at;
  ELSE
    INSERT INTO case_events (case_no, seq, actor, actor_role, actor_name, kind, payload, at)
    SELECT v_case, (e->>'seq')::integer, e->>'actor', e->>'actor_role', e->>'actor_name', e->>'kind',
      coalesce(e->'payload', '{}'::jsonb), (e->>'at')::timestamptz
    FROM jsonb_array_elements(coalesce(w->'events', '[]'::jsonb)) WITH ORDINALITY AS t(e, n)
    ORDER BY t.n
    ON CONFLICT (case_no, seq) DO NOTHING;
  END IF;

  IF v_fresh AND w->>'last_seq' IS NOT NULL THEN
    DELETE FROM case_events WHERE case_events.case_no = v_case AND case_events.seq > (w->>'last_seq')::integer;
  END IF;

  IF v_fresh THEN
    INSERT INTO samples AS s (sample_id, case_no, type, reason, lab_id, due_at, ordered_at, result, result_at,
      status, order_id)
    SELECT x.sample_id, v_case, x.type, x.reason, x.lab_id, x.due_at, x.ordered_at, x.result, x.result_at,
      x.status, x.order_id
    FROM jsonb_to_recordset(coalesce(w->'samples', '[]'::jsonb)) AS x(sample_id text, type text, reason text,
      lab_id text, due_at timestamptz, ordered_at timestamptz, result text, result_at timestamptz, status text,
      order_id text)
    ON CONFLICT (sample_id) DO UPDATE SET
      type = excluded.type, reason = excluded.reason,
      -- orderSample may have stored the lab's id before the workflow heard of it.
      lab_id = coalesce(excluded.lab_id, s.lab_id),
      due_at = excluded.due_at,
      ordered_at = coalesce(excluded.ordered_at, s.ordered_at),
      result = excluded.result, result_at = excluded.result_at,
      -- A sample's state only moves forward: orderSample may have written 'ordered' before the
      -- workflow's own write of the still-planned sample lands. A repair write says what it is.
      status = CASE WHEN v_repair IS NOT NULL OR s.status IS NULL
          OR array_position(array['planned','cancelled','ordered','resulted','corrected']::text[], excluded.status)
            >= array_position(array['planned','cancelled','ordered','resulted','corrected']::text[], s.status)
        THEN excluded.status ELSE s.status END,
      order_id = coalesce(excluded.order_id, s.order_id);
  ELSE
    INSERT INTO samples (sample_id, case_no, type, reason, lab_id, due_at, ordered_at, result, result_at,
      status, order_id)
    SELECT x.sample_id, v_case, x.type, x.reason, x.lab_id, x.due_at, x.ordered_at, x.result, x.result_at,
      x.status, x.order_id
    FROM jsonb_to_recordset(coalesce(w->'samples', '[]'::jsonb)) AS x(sample_id text, type text, reason text,
      lab_id text, due_at timestamptz, ordered_at timestamptz, result text, result_at timestamptz, status text,
      order_id text)
    ON CONFLICT DO NOTHING;
  END IF;

  -- A health check never changes once taken: insert-if-missing is enough.
  INSERT INTO health_checks (id, case_no, due_at, taken_at, temperature_c, symptoms, recorded_by)
  SELECT x.id, v_case, x.due_at, x.taken_at, x.temperature_c, coalesce(x.symptoms, '[]'::jsonb), x.recorded_by
  FROM jsonb_to_recordset(coalesce(w->'checks', '[]'::jsonb)) AS x(id text, due_at timestamptz,
    taken_at timestamptz, temperature_c numeric, symptoms jsonb, recorded_by text)
  ON CONFLICT (case_no, id) DO NOTHING;

  IF v_fresh THEN
    INSERT INTO escalations AS e (id, case_no, hotel_id, kind, level, severity, reason, status, opened_at,
      acked_at, acked_by, closed_at, closed_reason, closed_by, note, sample_id)
    SELECT x.id, v_case, v_row->>'hotel_id', x.kind, x.level, x.severity, x.reason, x.status, x.opened_at,
      x.acked_at, x.acked_by, x.closed_at, x.closed_reason, x.closed_by, x.note, x.sample_id
    FROM jsonb_to_recordset(coalesce(w->'escalations', '[]'::jsonb)) AS x(id text, kind text, level text,
      severity text, reason text, status text, opened_at timestamptz, acked_at timestamptz, acked_by text,
      closed_at timestamptz, closed_reason text, closed_by text, note text, sample_id text)
    ON CONFLICT (id) DO UPDATE SET
      kind = excluded.kind, opened_at = excluded.opened_at,
      level = excluded.level, severity = excluded.severity, reason = excluded.reason, status = excluded.status,
      acked_at = excluded.acked_at, acked_by = excluded.acked_by, closed_at = excluded.closed_at,
      closed_reason = excluded.closed_reason, closed_by = excluded.closed_by, note = excluded.note,
      sample_id = coalesce(e.sample_id, excluded.sample_id), hotel_id = coalesce(e.hotel_id, excluded.hotel_id);
  ELSE
    INSERT INTO escalations (id, case_no, hotel_id, kind, level, severity, reason, status, opened_at,
      acked_at, acked_by, closed_at, closed_reason, closed_by, note, sample_id)
    SELECT x.id, v_case, v_row->>'hotel_id', x.kind, x.level, x.severity, x.reason, x.status, x.opened_at,
      x.acked_at, x.acked_by, x.closed_at, x.closed_reason, x.closed_by, x.note, x.sample_id
    FROM jsonb_to_recordset(coalesce(w->'escalations', '[]'::jsonb)) AS x(id text, kind text, level text,
      severity text, reason text, status text, opened_at timestamptz, acked_at timestamptz, acked_by text,
      closed_at timestamptz, closed_reason text, closed_by text, note text, sample_id text)
    ON CONFLICT DO NOTHING;
  END IF;

  -- A repair write lists every sample, check and escalation the case has: what a task that never
  -- completed wrote of its own goes (a late result's escalation, which the API files for a closed
  -- case, and a sample a lab has answered are kept).
  IF v_fresh AND jsonb_typeof(v_repair) = 'object' THEN
    DELETE FROM escalations e WHERE e.case_no = v_case AND e.kind <> 'late_result'
      AND NOT (e.id = ANY (ARRAY(SELECT jsonb_array_elements_text(coalesce(v_repair->'escalations', '[]'::jsonb)))));
    DELETE FROM samples s WHERE s.case_no = v_case
      AND NOT (s.sample_id = ANY (ARRAY(SELECT jsonb_array_elements_text(coalesce(v_repair->'samples', '[]'::jsonb)))))
      AND NOT EXISTS (SELECT 1 FROM lab_results l WHERE l.sample_id = s.sample_id);
    DELETE FROM health_checks hc WHERE hc.case_no = v_case
      AND NOT (hc.id = ANY (ARRAY(SELECT jsonb_array_elements_text(coalesce(v_repair->'checks', '[]'::jsonb)))));
  END IF;

  IF jsonb_typeof(v_ins) = 'object' THEN
    INSERT INTO address_inspections AS a (id, case_no, street, address, status, requested_at, result_at,
      inspector, note)
    SELECT x.id, v_case, v_row->>'street', x.address, x.status, x.requested_at, x.result_at, x.inspector, x.note
    FROM jsonb_to_record(v_ins) AS x(id text, address text, status text, requested_at timestamptz,
      result_at timestamptz, inspector text, note text)
    ON CONFLICT (id) DO UPDATE SET
      status = excluded.status, result_at = excluded.result_at, inspector = excluded.inspector,
      note = excluded.note, address = coalesce(nullif(excluded.address, ''), a.address)
    WHERE v_fresh;
  END IF;

  RETURN v_fresh;
END
$fn$;
