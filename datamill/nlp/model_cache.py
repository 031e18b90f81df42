"""Files derived from the packaged embedding model, made locally once and cached.

Both the quantised model (`nlp.quantized`) and the static token table
(`nlp.static_embeddings`) are computed on this machine from the installed model file:
nothing is downloaded. Each is kept in the cache directory beside a ``.sha256`` file of its
own digest, checked on every load, so a missing or corrupt file is made again. A file is
made under a thread lock and an ``flock`` on a lock file, written into a temporary
directory in the cache and renamed into place, so threads and processes never read a
partial file. ``DATAMILL_EMBEDDINGS_CACHE`` moves the cache (default
``$XDG_CACHE_HOME/datamill/models``, else ``~/.cache/datamill/models``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ENV_CACHE = "DATAMILL_EMBEDDINGS_CACHE"

_lock = threading.Lock()


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where derived model files are kept."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "datamill" / "models"


def writable(cache: Path) -> bool:
    """Whether ``cache`` exists or can be made, and can be written."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        return os.access(cache, os.W_OK | os.X_OK)
    except OSError:
        return False


def digest(path: Path) -> str:
    """The file's SHA-256, hex."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def cached(target: Path, build: Callable[[Path], None]) -> Path:
    """``target``, made first by ``build(path)`` if missing or corrupt. ``build`` writes the
    file at the path it is given (in a temporary directory beside ``target``)."""
    if _intact(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock, _file_lock(target.with_name(target.name + ".lock")):
        if not _intact(target):  # another thread or process may have made it meanwhile
            _make(target, build)
    return target


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _intact(target: Path) -> bool:
    try:
        expected = _sidecar(target).read_text(encoding="ascii").strip()
        return target.is_file() and digest(target) == expected
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make(target: Path, build: Callable[[Path], None]) -> None:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        made = work / target.name
        build(made)
        sidecar = work / "made.sha256"
        sidecar.write_text(digest(made) + "\n", encoding="ascii")
        # The digest first: a crash between the two renames leaves a mismatch, made again.
        os.replace(sidecar, _sidecar(target))
        os.replace(made, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
