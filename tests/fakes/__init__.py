"""Fakes of vendor APIs, written from their documentation; test doubles, never shipped."""
