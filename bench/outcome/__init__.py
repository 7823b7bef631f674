"""The loop's effect: an experiment on the real stack, loop on versus loop off
(``python -m bench.outcome``; docs/outcome.md)."""
