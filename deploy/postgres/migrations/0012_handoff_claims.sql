-- When a hand-off delivery was first claimed for sending. A worker killed after its
-- request reached the CRM and before it stored the reply leaves the row pending with no
-- attempt counted; the claim time still says the CRM may hold the lead, so an erasure
-- is carried to that target too.
ALTER TABLE handoff_deliveries ADD COLUMN claimed_at timestamptz;
