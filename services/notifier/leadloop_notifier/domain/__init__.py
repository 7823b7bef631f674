"""notifier's pure decisions: who is told what, when, through which channel (no I/O)."""
