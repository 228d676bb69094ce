"""How a file path is written into anything meant to be shared: reports, audit rows, ledger evidence, W&B.

The one home of that rule. An absolute local path says nothing to a reviewer on another machine or to a
worker with another disk, and it leaks a user name and a directory layout. So, unless the setting
``share_absolute_paths`` asks for them:

- a URL (``s3://bucket/key``, ``https://…``) is kept, with any password masked;
- a path under the home is written relative to it (``reports/gate/v1.md``, ``inputs/day-01.parquet``);
- a path under the working directory is written relative to it, as an operator typed it (``batches/d1.parquet``);
- any other path keeps its last two parts behind an ellipsis (``…/batches/d1.parquet``): enough to recognise
  the file, nothing about where it lived.

Error messages are not shared: they keep the path as given, since the operator must find the file.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CREDENTIALS = re.compile(r"(//[^:/@]*:)[^@]*@")
ELLIPSIS = "…"


def is_url(value: str) -> bool:
    return bool(_URL.match(value))


def mask_password(url: str) -> str:
    """``url`` with whatever sits between ``user:`` and ``@`` hidden: for messages, logs and shared records."""
    return _CREDENTIALS.sub(r"\1***@", url)


def shareable(path: str | Path, home: Path, *, absolute: bool = False) -> str:
    """``path`` as it may appear in a shared record (see the module docstring); ``absolute`` keeps it whole."""
    text = str(path)
    if is_url(text):
        return mask_password(text)
    if absolute:
        return text
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        return PurePosixPath(*candidate.parts).as_posix() if candidate.parts else text
    resolved = _resolved(candidate)
    for base in (_resolved(home), _resolved(Path.cwd())):
        if resolved.is_relative_to(base) and resolved != base:
            return resolved.relative_to(base).as_posix()
    tail = resolved.parts[-2:] if len(resolved.parts) > 2 else resolved.parts[1:]
    return "/".join((ELLIPSIS, *tail))


def shareable_all(paths: list[str] | tuple[str, ...], home: Path, *, absolute: bool = False) -> list[str]:
    return [shareable(p, home, absolute=absolute) for p in paths]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # a dangling or looping symlink: judge the path as written
        return path.absolute()
