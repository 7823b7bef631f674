-- Repurchases: person-level dedupe records on a new lead whether the same person (an
-- identity key of email or phone) had an earlier lead that was won, any of them, not
-- only the latest. Kept with the lead so that a republished leads.accepted event says
-- what the first one said. Leads stored before this migration are false: their events
-- were published without the field, which means false.
ALTER TABLE leads ADD COLUMN customer_won_before boolean NOT NULL DEFAULT false;
