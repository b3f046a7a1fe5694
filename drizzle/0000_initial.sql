CREATE TYPE "public"."room_state" AS ENUM('free', 'reserved', 'occupied', 'awaiting_disinfection', 'out_of_service');--> statement-breakpoint
CREATE TABLE "activity_effects" (
	"workflow_id" text NOT NULL,
	"step" text NOT NULL,
	"result" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "activity_effects_workflow_id_step_pk" PRIMARY KEY("workflow_id","step")
);
--> statement-breakpoint
CREATE TABLE "address_inspections" (
	"id" text PRIMARY KEY NOT NULL,
	"case_no" text NOT NULL,
	"street" text NOT NULL,
	"address" text NOT NULL,
	"status" text DEFAULT 'requested' NOT NULL,
	"requested_at" timestamp with time zone NOT NULL,
	"result_at" timestamp with time zone,
	"inspector" text,
	"note" text
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"district" text,
	"street" text,
	"org_id" text,
	"key_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"rate_per_minute" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "case_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"case_no" text NOT NULL,
	"seq" integer NOT NULL,
	"actor" text NOT NULL,
	"actor_role" text,
	"actor_name" text,
	"kind" text NOT NULL,
	"payload" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cases" (
	"case_no" text PRIMARY KEY NOT NULL,
	"workflow_id" text NOT NULL,
	"request_id" text NOT NULL,
	"district" text NOT NULL,
	"street" text NOT NULL,
	"display_name" text,
	"phase" text NOT NULL,
	"colour" text,
	"policy_name" text NOT NULL,
	"hotel_id" text,
	"room_id" text,
	"requested_at" timestamp with time zone NOT NULL,
	"arrived_at" timestamp with time zone,
	"stay_start" timestamp with time zone,
	"release_due" timestamp with time zone,
	"next_check_due" timestamp with time zone,
	"pending_results" integer DEFAULT 0 NOT NULL,
	"open_escalations" integer DEFAULT 0 NOT NULL,
	"open_red_escalations" integer DEFAULT 0 NOT NULL,
	"inspection_status" text DEFAULT 'none' NOT NULL,
	"ended_at" timestamp with time zone,
	"state_version" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "escalations" (
	"id" text PRIMARY KEY NOT NULL,
	"case_no" text NOT NULL,
	"hotel_id" text,
	"kind" text NOT NULL,
	"level" text NOT NULL,
	"severity" text NOT NULL,
	"reason" text NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"opened_at" timestamp with time zone NOT NULL,
	"acked_at" timestamp with time zone,
	"acked_by" text,
	"closed_at" timestamp with time zone,
	"notified_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "health_checks" (
	"id" text PRIMARY KEY NOT NULL,
	"case_no" text NOT NULL,
	"due_at" timestamp with time zone,
	"taken_at" timestamp with time zone NOT NULL,
	"temperature_c" numeric(4, 1),
	"symptoms" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"recorded_by" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "hotels" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"district" text NOT NULL,
	"street" text,
	"medical_station_floor" integer,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lab_results" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"sample_id" text NOT NULL,
	"case_no" text,
	"lab_key_id" text,
	"result" text NOT NULL,
	"status" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rooms" (
	"id" text PRIMARY KEY NOT NULL,
	"hotel_id" text NOT NULL,
	"room_no" text NOT NULL,
	"floor" integer NOT NULL,
	"accessible" boolean DEFAULT false NOT NULL,
	"state" "room_state" DEFAULT 'free' NOT NULL,
	"case_no" text,
	"last_case_no" text,
	"disinfection" text,
	"out_of_service_reason" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "samples" (
	"sample_id" text PRIMARY KEY NOT NULL,
	"case_no" text NOT NULL,
	"type" text NOT NULL,
	"reason" text NOT NULL,
	"lab_id" text,
	"due_at" timestamp with time zone NOT NULL,
	"ordered_at" timestamp with time zone,
	"result" text DEFAULT 'pending' NOT NULL,
	"result_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "rooms" ADD CONSTRAINT "rooms_hotel_id_hotels_id_fk" FOREIGN KEY ("hotel_id") REFERENCES "public"."hotels"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "address_inspections_case" ON "address_inspections" USING btree ("case_no");--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_hash" ON "api_keys" USING btree ("key_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "case_events_case_seq" ON "case_events" USING btree ("case_no","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "cases_request_id" ON "cases" USING btree ("request_id");--> statement-breakpoint
CREATE INDEX "cases_phase_colour" ON "cases" USING btree ("phase","colour","case_no");--> statement-breakpoint
CREATE INDEX "cases_hotel" ON "cases" USING btree ("hotel_id","case_no");--> statement-breakpoint
CREATE INDEX "cases_release_due" ON "cases" USING btree ("release_due","case_no");--> statement-breakpoint
CREATE INDEX "cases_open_escalations" ON "cases" USING btree ("open_escalations","case_no");--> statement-breakpoint
CREATE INDEX "cases_street" ON "cases" USING btree ("district","street","case_no");--> statement-breakpoint
CREATE INDEX "escalations_open" ON "escalations" USING btree ("status","opened_at");--> statement-breakpoint
CREATE INDEX "escalations_case" ON "escalations" USING btree ("case_no");--> statement-breakpoint
CREATE INDEX "health_checks_case" ON "health_checks" USING btree ("case_no","taken_at");--> statement-breakpoint
CREATE INDEX "lab_results_sample" ON "lab_results" USING btree ("sample_id");--> statement-breakpoint
CREATE UNIQUE INDEX "rooms_hotel_room_no" ON "rooms" USING btree ("hotel_id","room_no");--> statement-breakpoint
CREATE UNIQUE INDEX "rooms_one_per_case" ON "rooms" USING btree ("case_no") WHERE "rooms"."case_no" is not null;--> statement-breakpoint
CREATE INDEX "rooms_hotel_state" ON "rooms" USING btree ("hotel_id","state");--> statement-breakpoint
CREATE INDEX "samples_case" ON "samples" USING btree ("case_no");--> statement-breakpoint
CREATE INDEX "samples_lab" ON "samples" USING btree ("lab_id","sample_id");