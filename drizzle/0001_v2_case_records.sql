-- v2 case records: sample states, why an escalation closed, health-check ids scoped to their case.
ALTER TABLE "health_checks" DROP CONSTRAINT "health_checks_pkey";--> statement-breakpoint
ALTER TABLE "health_checks" ADD CONSTRAINT "health_checks_case_no_id_pk" PRIMARY KEY("case_no","id");--> statement-breakpoint
ALTER TABLE "escalations" ADD COLUMN "closed_reason" text;--> statement-breakpoint
ALTER TABLE "escalations" ADD COLUMN "closed_by" text;--> statement-breakpoint
ALTER TABLE "escalations" ADD COLUMN "note" text;--> statement-breakpoint
ALTER TABLE "escalations" ADD COLUMN "sample_id" text;--> statement-breakpoint
ALTER TABLE "samples" ADD COLUMN "status" text;--> statement-breakpoint
ALTER TABLE "samples" ADD COLUMN "order_id" text;
