-- Least privilege in PostgreSQL: one group role per service, holding exactly the rights
-- that service's adapters use, and the erasure record for personal data.
--
-- The migration runner keeps running as the database owner (it alone runs DDL). Each
-- service logs in as its own LOGIN user, a member of its group role (deploy/env.sh and
-- deploy/postgres/pg.sh create those for the private cluster). Group roles are NOLOGIN
-- and cluster-wide, while privileges are per database: the roles are created when
-- missing (a DBA may create them beforehand; creating them needs CREATEROLE) and every
-- database gets its own grants here.
--
-- A table added by a later migration must be granted there, to its service's role only;
-- tests/e2e/test_postgres_roles.py fails on a table no service role can use.

-- ingest -------------------------------------------------------------------------
-- Erasures of a person's data (python -m leadloop_ingest.tools erase): what was erased,
-- when and how many rows, never the email or phone itself. subject_email_key and
-- subject_phone_key are keyed HMACs (the identity pepper) under their own domain
-- ("erasure:email", "erasure:phone"), so they match no dedupe key in leads: with the
-- pepper, an auditor can confirm that a given address was erased, and nobody can list
-- who was.
CREATE TABLE erasures (
    erasure_id         bigserial PRIMARY KEY,
    subject_email_key  text,
    subject_phone_key  text,
    requested_at       timestamptz NOT NULL,
    -- Rows changed per table, e.g. {"leads": 2, "lead_merges": 1, "lead_activities": 3}.
    rows_erased        jsonb NOT NULL,
    leads_erased       integer NOT NULL,
    -- Tombstones written to compacted topics keyed by an erased lead (none in the
    -- current topic registry: the only compacted topic, crm.reps, is keyed by rep_id).
    tombstones         integer NOT NULL DEFAULT 0,
    CHECK (subject_email_key IS NOT NULL OR subject_phone_key IS NOT NULL)
);
CREATE INDEX erasures_email ON erasures (subject_email_key) WHERE subject_email_key IS NOT NULL;
CREATE INDEX erasures_phone ON erasures (subject_phone_key) WHERE subject_phone_key IS NOT NULL;

-- When a lead's personal data was erased (its non-personal facts stay).
ALTER TABLE leads ADD COLUMN erased_at timestamptz;

-- roles --------------------------------------------------------------------------
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['leadloop_ingest', 'leadloop_assignment',
                             'leadloop_sla_monitor', 'leadloop_metrics'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another database's migration created it at the same moment.
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

-- Nobody but the owner and the service roles connects; nobody else creates objects,
-- temporary tables included (PostgreSQL 15 already denies CREATE on public; older
-- servers grant it to PUBLIC).
DO $$ BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leadloop_ingest, leadloop_assignment, '
                   'leadloop_sla_monitor, leadloop_metrics', current_database());
END $$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public
    TO leadloop_ingest, leadloop_assignment, leadloop_sla_monitor, leadloop_metrics;

-- Whatever a role held in this database before (nothing, in a new one): start clean.
REVOKE ALL ON ALL TABLES IN SCHEMA public
    FROM leadloop_ingest, leadloop_assignment, leadloop_sla_monitor, leadloop_metrics;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public
    FROM leadloop_ingest, leadloop_assignment, leadloop_sla_monitor, leadloop_metrics;

-- ingest: the system of record for leads, the only role that reads personal data.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    leads, ingest_outcomes, lead_merges, lead_activities, lead_stage_changes,
    lead_ownership, crm_rejects, erasures
    TO leadloop_ingest;
GRANT USAGE ON SEQUENCE erasures_erasure_id_seq TO leadloop_ingest;

-- assignment
GRANT SELECT, INSERT, UPDATE, DELETE ON
    assignments, rotation_cursors, rep_load, rep_daily_intake, weighted_counts,
    assignment_reps, assignment_leads, assignment_cooldowns, assignment_applied_events
    TO leadloop_assignment;

-- sla-monitor
GRANT SELECT, INSERT, UPDATE, DELETE ON
    sla_clocks, escalations, sla_lead_touches, sla_applied_events, sla_leads, sla_reps,
    sla_alert_outbox
    TO leadloop_sla_monitor;
DO $$ BEGIN
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO leadloop_sla_monitor',
                   pg_get_serial_sequence('sla_alert_outbox', 'seq'));
END $$;

-- metrics
GRANT SELECT, INSERT, UPDATE, DELETE ON
    metric_applied_events, metric_values, metric_leads
    TO leadloop_metrics;
DO $$ BEGIN
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO leadloop_metrics',
                   pg_get_serial_sequence('metric_applied_events', 'seq'));
END $$;
