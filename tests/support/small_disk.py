"""A small file system of a test's own, to fill up: a tmpfs mounted under /tmp (where a
server's own OS user can reach it, unlike pytest's private tmp_path), and a filler file
written until no byte is left. Mounting needs root; callers skip without it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fill", "small_disk"]


@contextlib.contextmanager
def small_disk(size_mb: int, prefix: str) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` (mode 0755), unmounted and removed on leaving."""
    mount = Path(tempfile.mkdtemp(prefix=prefix))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mount)],
        check=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(mount: Path) -> Path:
    """Write a file until the file system is full; the file (delete it to free the space)."""
    filler = mount / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(chunk)
            out.flush()
    assert os.statvfs(mount).f_bavail == 0, "the file system is not full"
    return filler
