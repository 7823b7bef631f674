-- metrics: per-lead state and a replayable log of the facts applied.
--
-- The funnel, pipeline and SLA gauges and the first-touch histograms depend on more than
-- one event per lead (a stage change needs the lead's source and team, which arrive on
-- other topics). The metrics service keeps what it needs of each lead here, changed in
-- the same transaction as the applied event ids and the metric values, so every served
-- value is a function of these tables. `leadloop_metrics.tools reconcile` replays the
-- facts in application order and compares.

-- The compact fact each applied event contributed (no personal data: ids, enums, times,
-- amounts), and the order in which they were applied. Events applied before this
-- migration have no fact and cannot be replayed; reconcile reports how many.
ALTER TABLE metric_applied_events
    ADD COLUMN seq      bigserial,
    ADD COLUMN topic    text,
    ADD COLUMN lead_id  text,
    ADD COLUMN fact     jsonb;

CREATE UNIQUE INDEX metric_applied_events_seq_key ON metric_applied_events (seq);

-- What the metrics service knows of one lead (source, team, owner, stage, amount, first
-- assignment and first touch, open escalations, and the label values frozen when a
-- counter first counted it). The row is locked while a batch changes it.
CREATE TABLE metric_leads (
    lead_id     text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);
