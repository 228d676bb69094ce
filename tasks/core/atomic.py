"""One atomic text writer for small state files (cursors, specifications) that readers may open at any time."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file per process and thread, then ``os.replace``.

    Readers see the old content or the new, never half of it; two concurrent writers never share a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
