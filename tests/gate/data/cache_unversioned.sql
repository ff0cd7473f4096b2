-- The gate database as the unversioned cache (gate/cache.py and gate/commands.py before PRAGMA user_version)
-- created it, with its pragmas: the starting point of tests/gate/test_gate_store_schema.py.
PRAGMA journal_mode = wal;
CREATE TABLE IF NOT EXISTS "meetings" ("id" INTEGER NOT NULL PRIMARY KEY, "title" TEXT NOT NULL, "scheme" TEXT NOT NULL, "starts_at" REAL NOT NULL, "ends_at" REAL NOT NULL, "site_id" TEXT NOT NULL, "venue" TEXT NOT NULL, "status" TEXT NOT NULL, "entry_policy" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "delegates" ("id" INTEGER NOT NULL PRIMARY KEY, "meeting_id" INTEGER NOT NULL, "delegate_id" INTEGER NOT NULL, "name" TEXT NOT NULL, "organisation" TEXT NOT NULL, "position" TEXT NOT NULL, "code_hash" TEXT, "valid_from" REAL NOT NULL, "valid_until" REAL NOT NULL, "revoked" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS "delegate_code_hash" ON "delegates" ("code_hash");
CREATE UNIQUE INDEX IF NOT EXISTS "delegate_meeting_id_delegate_id" ON "delegates" ("meeting_id", "delegate_id");
CREATE TABLE IF NOT EXISTS "signing_keys" ("key_id" INTEGER NOT NULL PRIMARY KEY, "public_key" TEXT NOT NULL, "revoked" INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS "meta" ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "outbox" ("checkin_id" TEXT NOT NULL PRIMARY KEY, "payload" BLOB NOT NULL, "created_at" REAL NOT NULL, "last_sent_at" REAL, "attempts" INTEGER NOT NULL DEFAULT 0, "delivered_at" REAL, "awaiting_outcome" INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS "outbox_created_at" ON "outbox" ("created_at");
CREATE INDEX IF NOT EXISTS "outbox_delivered_at" ON "outbox" ("delivered_at");
CREATE TABLE IF NOT EXISTS "consumed" ("credential" TEXT NOT NULL PRIMARY KEY, "checkin_id" TEXT NOT NULL, "at" REAL NOT NULL, "entered" INTEGER NOT NULL DEFAULT 1, "inside" INTEGER NOT NULL DEFAULT 1, "gate_id" TEXT);
CREATE TABLE IF NOT EXISTS command_log (
        command_id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        issued_by TEXT NOT NULL,
        issued_at REAL NOT NULL,
        received_at REAL NOT NULL,
        ok INTEGER,
        reason TEXT,
        result BLOB
    );
CREATE INDEX IF NOT EXISTS command_log_received ON command_log (received_at);
CREATE TABLE IF NOT EXISTS command_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
