-- Each running worker process says it is there (src/worker-liveness.ts): its row's seen_at is
-- moved every WORKER_LIVENESS_BEAT_MS by the database's clock while its workflow poller polls and
-- Temporal answers it, and removed when it stops. The API's worker breaker reads the freshest
-- beat per namespace and task queue: a worker that beats is behind, not gone
-- (src/api/dependencies.ts).
CREATE TABLE "worker_liveness" (
	"worker_id" text PRIMARY KEY NOT NULL,
	"namespace" text NOT NULL,
	"task_queue" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"seen_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "worker_liveness_queue_seen_idx" ON "worker_liveness" USING btree ("namespace","task_queue","seen_at");