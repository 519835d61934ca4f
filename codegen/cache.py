"""On-disk cache of compiled machine code, keyed by a hash of the simplified graph, backend, target and versions.

Location: ``$SYMDIFF_CACHE_DIR`` or ``~/.cache/symdiff``. Turn it off with ``SYMDIFF_CACHE=0`` (or
``sd.compile(..., cache=False)``); clear it with ``symdiff.codegen.cache.clear()`` or by deleting the folder.
Every backend uses it: llvm graph objects at the top, shared GEMM objects in the ``kernels`` namespace,
cuda/cuda-cpu shared libraries in ``cuda`` (a namespace is a subfolder).

Entry format: magic, format version, the key, a SHA-256 of the payload, then the payload. A corrupt,
truncated or foreign entry fails these checks and is rebuilt, never loaded. Writes go to a temporary
file in the same folder and are renamed into place (atomic on POSIX), so concurrent processes compiling
the same graph never see a half-written entry.

Trust (an entry is machine code that gets loaded into the process): the folders are created private
to the user (0700), entries 0600. An entry is loaded only if it, its folder, its namespace folder and
the cache folder are owned by the current user and not writable by group or others; anything else is
refused -- treated as a miss, never read, never written into -- with one RuntimeWarning per path.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Optional

MAGIC = b"SYMDIFF-CACHE\x00"
FORMAT = 1


def enabled(flag: Optional[bool] = None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("SYMDIFF_CACHE", "1") not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    return Path(os.environ.get("SYMDIFF_CACHE_DIR") or Path.home() / ".cache" / "symdiff")


def source_files() -> list[str]:
    """symdiff's and codegen's own source files (.py, .c, .h; real paths, sorted): what
    :func:`source_fingerprint` hashes."""
    import symdiff
    import symdiff.codegen
    files: set[str] = set()
    for pkg in (symdiff, symdiff.codegen):  # the codegen folder is installed as symdiff.codegen
        root = Path(pkg.__file__).resolve().parent  # resolved once; only a linked file is resolved again
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                if name.endswith((".py", ".c", ".h")) and os.path.isfile(path):
                    files.add(os.path.realpath(path) if os.path.islink(path) else path)
    return sorted(files)


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """A hash of symdiff's and codegen's own source files: the compiler version in cache keys."""
    h = hashlib.sha256()
    for f in source_files():
        h.update(os.path.basename(f).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def make_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def entry_path(key: str, namespace: str = "") -> Path:
    """Where ``key``'s entry lives: graph entries at the top, other kinds in a namespace subfolder
    (``"kernels"``: shared GEMM objects; ``"cuda"``: shared libraries)."""
    return cache_dir() / namespace / key[:2] / f"{key}.bin"


_WARNED: set = set()
_WARN_LOCK = threading.Lock()


def forget_warnings() -> None:
    """Warn again about paths already refused (each refused path is reported once per process)."""
    with _WARN_LOCK:
        _WARNED.clear()


def _refuse(path: Path, why: str) -> bool:
    with _WARN_LOCK:
        first = str(path) not in _WARNED
        _WARNED.add(str(path))
    if first:
        warnings.warn(f"symdiff cache: not using {path}: {why} (a cache entry is machine code loaded into "
                      "this process; fix the permissions or point SYMDIFF_CACHE_DIR elsewhere)",
                      RuntimeWarning, stacklevel=3)
    return False


def _trusted(path: Path, follow: bool = True) -> bool:
    """``path`` is owned by this user and not writable by group/others (a missing path is not refused:
    the caller's read or write fails on its own). Always true where there are no POSIX owners."""
    if not hasattr(os, "getuid"):
        return True
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return True
    if st.st_uid != os.getuid():
        return _refuse(path, f"owned by uid {st.st_uid}, not by this user (uid {os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return _refuse(path, f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")
    if not follow and stat.S_ISLNK(st.st_mode):
        return _refuse(path, "a symbolic link")
    return True


def _folders(key: str, namespace: str) -> list[Path]:
    """The cache folder, the namespace folder and the entry's folder: each must be trusted."""
    root = cache_dir()
    chain = [root] + ([root / namespace] if namespace else [])
    return chain + [chain[-1] / key[:2]]


def _make_private_dirs(folders: list[Path]) -> bool:
    """Create missing folders 0700 (the cache folder's parents as usual); False if one is refused."""
    for i, d in enumerate(folders):
        if not d.is_dir():
            if i == 0:
                d.parent.mkdir(parents=True, exist_ok=True)
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:  # a concurrent process made it: checked below
                pass
            else:
                os.chmod(d, 0o700)  # (mkdir's mode is filtered by the umask; this makes it exact)
        if not _trusted(d):
            return False
    return True


def load(key: str, namespace: str = "") -> Optional[tuple[dict, bytes]]:
    """(metadata, payload) for ``key``, or None when absent, refused (see the module docstring) or
    invalid (invalid entries of this user are removed). The payload is exactly the bytes verified."""
    p = entry_path(key, namespace)
    if not p.exists() or not all(_trusted(d) for d in _folders(key, namespace)) or not _trusted(p, follow=False):
        return None
    try:
        data = p.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(MAGIC):
            raise ValueError("bad magic")
        rest = data[len(MAGIC):]
        header_len = int.from_bytes(rest[:4], "little")
        header = json.loads(rest[4:4 + header_len].decode())
        payload = rest[4 + header_len:]
        if (header.get("format") != FORMAT or header.get("key") != key
                or header.get("sha256") != hashlib.sha256(payload).hexdigest() or len(payload) != header.get("size")):
            raise ValueError("entry does not match")
        return header.get("meta", {}), payload
    except Exception:  # corrupt / truncated / foreign: drop it and rebuild
        try:
            p.unlink()
        except OSError:
            pass
        return None


def store(key: str, meta: dict, payload: bytes, namespace: str = "") -> Optional[Path]:
    """Publish an entry atomically (temporary file, then rename); its path, or None when the cache
    folder is unusable or refused (that only costs the cache)."""
    p = entry_path(key, namespace)
    try:
        if not _make_private_dirs(_folders(key, namespace)):
            return None
        header = json.dumps({"format": FORMAT, "key": key, "size": len(payload),
                             "sha256": hashlib.sha256(payload).hexdigest(), "meta": meta}).encode()
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")  # mode 0600
    except OSError:
        return None  # a read-only disk only costs the cache
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(header).to_bytes(4, "little") + header + payload)
        os.replace(tmp, p)
        return p
    except OSError:  # a full disk only costs the cache; leave no partial temporary file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return None


def pack(blobs: list[bytes]) -> bytes:
    """Several byte strings as one payload (count, then length-prefixed blobs)."""
    return len(blobs).to_bytes(4, "little") + b"".join(len(b).to_bytes(8, "little") + b for b in blobs)


def unpack(payload: bytes) -> list[bytes]:
    n, pos, out = int.from_bytes(payload[:4], "little"), 4, []
    for _ in range(n):
        size = int.from_bytes(payload[pos:pos + 8], "little")
        out.append(payload[pos + 8:pos + 8 + size])
        pos += 8 + size
    if pos != len(payload) or len(out) != n or any(len(b) == 0 for b in out):
        raise ValueError("malformed payload")
    return out


def clear() -> None:
    """Delete every cached entry."""
    shutil.rmtree(cache_dir(), ignore_errors=True)
