"""Operator endpoints of ingest: resuming after the broken-producer guard halted it."""

from __future__ import annotations

import faust

from leadloop_ingest.handlers import IngestGuard

__all__ = ["register_admin"]


def register_admin(app: faust.App, guard: IngestGuard) -> None:
    @app.page("/v1/admin/resume")
    class Resume(faust.web.View):
        async def post(self, request: faust.web.Request) -> faust.web.Response:
            if guard.resume():
                return self.json({"status": "resumed"})
            return self.json({"status": "not halted"}, status=409)
