"""sla-monitor's pure decisions: policies, ladder arithmetic (no I/O, time passed in)."""
