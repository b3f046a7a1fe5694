CREATE TABLE "directive_cases" (
	"directive_id" text NOT NULL,
	"case_no" text NOT NULL,
	"outcome" text NOT NULL,
	"reason" text,
	"before" jsonb,
	"after" jsonb,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "directive_cases_directive_id_case_no_pk" PRIMARY KEY("directive_id","case_no")
);
--> statement-breakpoint
CREATE TABLE "directives" (
	"id" text PRIMARY KEY NOT NULL,
	"request_id" text NOT NULL,
	"district" text NOT NULL,
	"policy_version" integer NOT NULL,
	"filter" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"reason" text NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"total" integer NOT NULL,
	"case_nos" jsonb NOT NULL,
	"rate_per_second" integer NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "policies" (
	"district" text NOT NULL,
	"version" integer NOT NULL,
	"name" text NOT NULL,
	"body" jsonb NOT NULL,
	"note" text,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "policies_district_version_pk" PRIMARY KEY("district","version")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "directives_request" ON "directives" USING btree ("request_id");--> statement-breakpoint
CREATE INDEX "directives_district" ON "directives" USING btree ("district","created_at");