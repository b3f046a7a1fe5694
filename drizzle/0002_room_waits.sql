CREATE TABLE "room_waits" (
	"case_no" text PRIMARY KEY NOT NULL,
	"workflow_id" text NOT NULL,
	"district" text NOT NULL,
	"colour" text NOT NULL,
	"priority" integer NOT NULL,
	"requested_at" timestamp with time zone NOT NULL,
	"seq" bigserial NOT NULL,
	"since" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "room_waits_order" ON "room_waits" USING btree ("district","priority","requested_at","seq");