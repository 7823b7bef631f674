"""sla-monitor's pure decisions: policies, ladder arithmetic, the clock lifecycle and
firing (no I/O, time passed in)."""
