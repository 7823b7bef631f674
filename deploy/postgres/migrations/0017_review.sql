-- review (复盘): `leadloop review` reads the metrics service's stored facts and the
-- forecast's snapshots, nothing else. Its group role may only read those two tables
-- (least privilege as in 0008_service_roles.sql: NOLOGIN, created when missing; a
-- LOGIN user member of it connects).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leadloop_review') THEN
        BEGIN
            CREATE ROLE leadloop_review NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- Another database's migration created it at the same moment.
            NULL;
        END;
    END IF;
END $$;

DO $$ BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leadloop_review', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO leadloop_review;
GRANT SELECT ON metric_applied_events, metric_forecasts TO leadloop_review;
