-- The webhook replay cache (services/ingest/leadloop_ingest/adapters/replay_cache.py):
-- one row per signed request accepted (or being accepted) by any ingest worker, keyed by
-- SHA-256 of the endpoint's scope and the request's signature. A second delivery of the
-- same signed request finds the row and is refused (409 replayed). Rows expire when a
-- replay could no longer verify (signed timestamp + tolerance) or after the configured
-- retention for schemes that sign no timestamp; ingest purges them. No body, no secret,
-- no personal data: a MAC over the body says nothing without the secret.
CREATE TABLE webhook_replays (
    replay_key   bytea PRIMARY KEY CHECK (octet_length(replay_key) = 32),
    scope        text NOT NULL,
    reserved_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX webhook_replays_expiry ON webhook_replays (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_replays TO leadloop_ingest;
