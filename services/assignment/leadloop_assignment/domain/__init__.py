"""Assignment's pure decisions: rule matching and routing strategies (no I/O, no clock)."""
