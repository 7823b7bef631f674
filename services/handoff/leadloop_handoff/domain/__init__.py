"""hand-off's pure decisions: what a target receives, when a delivery is retried (no I/O)."""
