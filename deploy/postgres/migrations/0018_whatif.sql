-- whatif: `leadloop whatif` replays stored history through a candidate configuration.
-- It reads the leads assignment decided (the PII-free leads.accepted event in
-- assignment_leads), their decisions, the roster, the CRM's touches and stage changes,
-- and sla-monitor's ladder steps; nothing else, and it writes nothing. Its group role
-- may only read those tables (least privilege as in 0008_service_roles.sql: NOLOGIN,
-- created when missing; a LOGIN user member of it connects).
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leadloop_whatif') THEN
        BEGIN
            CREATE ROLE leadloop_whatif NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- Another database's migration created it at the same moment.
            NULL;
        END;
    END IF;
END $$;

DO $$ BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leadloop_whatif', current_database());
END $$;
GRANT USAGE ON SCHEMA public TO leadloop_whatif;
GRANT SELECT ON assignments, assignment_leads, assignment_reps, lead_activities,
    lead_stage_changes, escalations TO leadloop_whatif;
