-- assignment: state for daily intake caps and weighted rotation. Both change in the
-- transaction that records the assignment, under the lock on the team's
-- rotation_cursors row (the lock guards the whole team's routing state).

-- Leads assigned to a rep per calendar day, the day taken in the time zone of the rep's
-- team (rules file, `timezone`, default UTC). A rep's `daily_cap` is checked against it.
CREATE TABLE rep_daily_intake (
    rep_id    text NOT NULL,
    day       date NOT NULL,
    assigned  integer NOT NULL DEFAULT 0 CHECK (assigned >= 0),
    PRIMARY KEY (rep_id, day)
);

-- Leads each rep got from a team's weighted rotation, per roster: roster_id identifies
-- the team's active reps with a positive weight and their weights (a hash computed by
-- leadloop_assignment.domain.routing.roster_id). A new rep or a changed weight starts
-- fresh counts; returning to an earlier roster resumes its counts.
CREATE TABLE weighted_counts (
    team_id    text NOT NULL,
    roster_id  text NOT NULL,
    rep_id     text NOT NULL,
    assigned   bigint NOT NULL DEFAULT 0 CHECK (assigned >= 0),
    PRIMARY KEY (team_id, roster_id, rep_id)
);
