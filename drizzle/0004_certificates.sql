CREATE TABLE "certificates" (
	"certificate_no" text PRIMARY KEY NOT NULL,
	"case_no" text NOT NULL,
	"released_at" timestamp with time zone NOT NULL,
	"stay_start" timestamp with time zone,
	"hotel_name" text,
	"negatives" integer NOT NULL,
	"basis" jsonb NOT NULL,
	"issued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"downloads" integer DEFAULT 0 NOT NULL
);
