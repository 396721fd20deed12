"""Writing what a command produces: checked before the work, replaced whole.

A command that runs for a minute must not find out at the end that its
output cannot be written, so :func:`check_output` is called before the work.
:func:`write_atomically` writes to a temporary file beside the target and
renames it into place, so a reader never sees half a file.  A writer killed
before the rename leaves its temporary behind; the next write to the same
target removes those whose writer is gone.  The new file keeps the mode of
the one it replaces, or takes the umask's, as ``open`` would give it.
"""
from __future__ import annotations

import os
import stat
import tempfile
from glob import escape as glob_escape
from pathlib import Path

from vmstate.core.errors import UsageError

#: A temporary file's name: ``.{target}.{writer's pid}.{random}`` and this.
PARTIAL = ".vmstate-partial"


def check_output(path: str | os.PathLike, option: str) -> None:
    """Refuse, before any work, a path that cannot be written: a folder, a
    missing or unwritable parent folder."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder")
    if not parent.is_dir():
        raise UsageError(f"{option}: {parent} does not exist or is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option}: {path} is not writable")


def check_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse, before any work, a folder that cannot be made or written:
    a file in its place, or a nearest existing parent that is read-only."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option}: {path} is not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: {existing} is not writable")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned(path: Path) -> None:
    prefix = f".{path.name}."
    for entry in (path.parent if str(path.parent) else Path(".")).glob(f"{glob_escape(prefix)}*{PARTIAL}"):
        pid = entry.name[len(prefix):].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            entry.unlink(missing_ok=True)


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` in one rename."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    _remove_abandoned(path)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=PARTIAL, dir=parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
