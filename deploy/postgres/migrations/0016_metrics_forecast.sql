-- The forecast's snapshots (leadloop_metrics.domain.forecast): per team and forecast
-- month, what the pipeline promised at a fixed instant (00:00 UTC on the 1st and every
-- Monday), kept so a closed month's accuracy can be measured per snapshot age. Amounts
-- in cents; probabilities are the P(won | stage) the weighted forecast used.
CREATE TABLE metric_forecasts (
    team             text NOT NULL,
    month            date NOT NULL CHECK (extract(day FROM month) = 1),
    taken_at         timestamptz NOT NULL,
    age              integer NOT NULL CHECK (age BETWEEN 0 AND 8),
    weighted_cents   bigint NOT NULL CHECK (weighted_cents >= 0),
    commit_cents     bigint NOT NULL CHECK (commit_cents >= 0),
    best_case_cents  bigint NOT NULL CHECK (best_case_cents >= weighted_cents
                                            AND best_case_cents >= commit_cents),
    probabilities    jsonb NOT NULL,
    PRIMARY KEY (team, month, taken_at)
);
CREATE INDEX metric_forecasts_taken ON metric_forecasts (taken_at);
GRANT SELECT, INSERT ON metric_forecasts TO leadloop_metrics;
