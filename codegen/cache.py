"""On-disk cache of compiled object code, keyed by a hash of the simplified graph, backend, target and versions.

Location: ``$SYMDIFF_CACHE_DIR`` or ``~/.cache/symdiff``. Turn it off with ``SYMDIFF_CACHE=0`` (or
``sd.compile(..., cache=False)``); clear it with ``symdiff.codegen.cache.clear()`` or by deleting the folder.
(The cuda/cuda-cpu backends keep their shared libraries under ``<cache dir>/cuda``: the same switches
and ``clear()`` apply.)

Entry format: magic, format version, the key, a SHA-256 of the payload, then the payload. A corrupt,
truncated or foreign entry fails these checks and is rebuilt, never loaded. Writes go to a temporary
file in the same folder and are renamed into place (atomic on POSIX), so concurrent processes compiling
the same graph never see a half-written entry.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
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


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """A hash of symdiff's and codegen's own source files: the compiler version in cache keys."""
    import symdiff
    import symdiff.codegen
    h = hashlib.sha256()
    files: set = set()
    for pkg in (symdiff, symdiff.codegen):  # the codegen folder is installed as symdiff.codegen
        files.update(f.resolve() for f in Path(pkg.__file__).resolve().parent.rglob("*")
                     if f.suffix in (".py", ".c", ".h") and f.is_file())
    for f in sorted(files):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def make_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _path(key: str, namespace: str = "") -> Path:
    """Graph entries at the top; other kinds (``namespace="kernels"``: shared GEMM objects) in a subfolder."""
    return cache_dir() / namespace / key[:2] / f"{key}.bin"


def load(key: str, namespace: str = "") -> Optional[tuple[dict, bytes]]:
    """(metadata, payload) for ``key``, or None when absent or invalid (invalid entries are removed)."""
    p = _path(key, namespace)
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


def store(key: str, meta: dict, payload: bytes, namespace: str = "") -> None:
    p = _path(key, namespace)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"format": FORMAT, "key": key, "size": len(payload),
                             "sha256": hashlib.sha256(payload).hexdigest(), "meta": meta}).encode()
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
    except OSError:
        return  # a read-only disk only costs the cache
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(header).to_bytes(4, "little") + header + payload)
        os.replace(tmp, p)
    except OSError:  # a full disk only costs the cache; leave no partial temporary file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass


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
