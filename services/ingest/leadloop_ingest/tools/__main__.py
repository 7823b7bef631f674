"""``python -m leadloop_ingest.tools <command>``: one sub-command per module."""

from __future__ import annotations

import typer

from leadloop_ingest.tools import erase, import_csv, replay

app = typer.Typer(
    help="leadloop ingest tools: CSV batch import, replay of rejected records, erasure",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # help paragraphs re-flow instead of keeping line breaks
)
app.command("import-csv")(import_csv.import_csv)
app.command("replay")(replay.replay)
app.command("erase")(erase.erase)

if __name__ == "__main__":
    app()
