"""Files cnngraph writes: checked before the work, written whole or not at all.

Every output goes to a temporary file in the destination's folder and is moved into place
with :func:`os.replace` only once complete, so a failed write (disk full, quota, a crash)
leaves the previous file as it was. :func:`check_output` refuses a missing or unwritable
folder, or a path that is a folder, before a model is built or run.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> p = write_text(os.path.join(d, "a.md"), "# hello\\n")
>>> open(p).read(), sorted(os.listdir(d))
('# hello\\n', ['a.md'])
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cnngraph.ir.errors import InputError


def check_output(path, suffixes=None, what: str = "output") -> Path:
    """``path`` as a :class:`Path` if it can be written: its folder exists and is writable,
    it is not itself a folder, and (when ``suffixes`` is given) it ends with one of them.

    >>> check_output("/no/such/folder/x.svg")
    Traceback (most recent call last):
    ...
    cnngraph.ir.errors.InputError: output /no/such/folder/x.svg: folder /no/such/folder does not exist
    """
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise InputError(f"{what} {str(path)!r}: not a file name")
    if p.is_dir():
        raise InputError(f"{what} {p}: is a folder, not a file")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(f"{what} {p}: the file name must end with {' or '.join(suffixes)}")
    folder = p.parent
    if not folder.exists():
        raise InputError(f"{what} {p}: folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"{what} {p}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{what} {p}: folder {folder} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{what} {p}: the file exists and is not writable")
    return p


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` (same suffix, for writers that look at it), moved to
    ``path`` when the block ends without error and removed otherwise.

    >>> import tempfile, os
    >>> target = os.path.join(tempfile.mkdtemp(), "w.bin")
    >>> with atomic_path(target) as tmp:
    ...     _ = open(tmp, "wb").write(b"data")
    >>> open(target, "rb").read()
    b'data'
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=f".tmp{p.suffix}", dir=p.parent or ".")
    os.close(fd)
    try:
        yield tmp
        _set_mode(tmp, p)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb", **kw):
    """``open(path, mode)`` on a temporary file that replaces ``path`` once closed without error."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path written."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path written."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def _set_mode(tmp, target: Path):
    # mkstemp makes 0600 files; give the result the mode a plain open() would (or the old file's).
    try:
        mode = target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
