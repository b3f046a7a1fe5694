CREATE TABLE "codec_audit" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"key_id" text NOT NULL,
	"role" text NOT NULL,
	"operation" text NOT NULL,
	"namespace" text,
	"payloads" integer NOT NULL,
	"origin" text
);
--> statement-breakpoint
CREATE INDEX "codec_audit_at" ON "codec_audit" USING btree ("at");--> statement-breakpoint
CREATE INDEX "codec_audit_key" ON "codec_audit" USING btree ("key_id","at");