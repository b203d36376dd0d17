"""Small helpers several steps need: atomic writes, JSON, seeding, provenance, logging."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("anipop")

# errors of the write itself (disk full, quota, read-only or forbidden folder, file too big, I/O)
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                           errno.EIO})


# userinfo of any scheme://user:password@host, and the values of secret-looking query parameters
_URI_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#\s@]+)@")
_SECRET_QUERY = re.compile(r"(?P<key>[?&;](?:[a-z0-9_.-]*(?:token|password|passwd|pwd|secret|key|signature|sig|"
                           r"credential|auth)[a-z0-9_.-]*))=(?P<value>[^&#\s'\"]*)", re.IGNORECASE)


def redact(text: object) -> str:
    """`text` (a URI, or a message that may quote one) with credentials replaced by '***'.

    The one helper for every URI that is printed, logged, stored as an MLflow param/tag or linked:
    `http://user:pw@host` -> `http://***@host`, `...?token=abc` -> `...?token=***`.
    """
    text = str(text)
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['key']}=***", text)


# Exit status of an `anipop` step whose failure a retry may fix (a network hiccup): EX_TEMPFAIL of sysexits.h.
# The Prefect flow retries a DVC stage that exited with it, and only such a stage.
TRANSIENT_EXIT = 75
_TRANSPORT_MODULES = ("requests", "httpx", "httpcore", "urllib3")


def is_transient(error: BaseException) -> bool:
    """A lost connection or a timeout somewhere in the error's chain, not bad data, config or a read-only store.

    anipop wraps every tracking-store failure in TrackingUnavailable (a ConnectionError); what it wraps decides:
    an HTTP connection refused or timed out is transient, a read-only sqlite file is not.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        wrapper = type(current).__name__ == "TrackingUnavailable"
        if not wrapper and isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if any(cls.__module__.split(".")[0] in _TRANSPORT_MODULES and
               any(word in cls.__name__ for word in ("Connect", "Timeout", "Transport", "Network"))
               for cls in type(current).__mro__):
            return True
        if not wrapper and any(text in str(current) for text in _TRANSIENT_TEXTS):
            return True  # e.g. MLflow's "API request ... failed ... Max retries exceeded" (an MlflowException)
        current = current.__cause__ or current.__context__
    return False


_TRANSIENT_TEXTS = ("Max retries exceeded", "Connection refused", "timed out", "Temporary failure in name resolution")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_log_records()


def redact_log_records() -> None:
    """Every log record of this process, from any library, with credentials redacted before any handler sees it.

    Why a record factory, not a filter: urllib3 logs its retries ("Retrying ... /api/2.0/...?token=...") on its
    own loggers, whose records a filter on our loggers never meets, and handlers added later (Prefect's, MLflow's)
    would lack a handler filter."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_anipop_redacting", False):
        return

    def redacting(*args, **kwargs) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record stays as it is; logging reports it itself
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return record

    redacting._anipop_redacting = True
    logging.setLogRecordFactory(redacting)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Why: a run killed mid-write must never leave a truncated file that a rerun mistakes for a result.
    Errors while creating the folder (read-only disk, permissions) name the path, and so do write errors
    inside the block (disk full) that name no file or only the temp file: libraries such as pyarrow
    report ENOSPC without any path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror or err}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in _WRITE_ERRNOS or (err.filename is not None and os.fspath(err.filename) != str(tmp)):
            raise  # not a write error, or one that already names its own file (e.g. a file being read)
        # OSError(errno, ...) builds the matching subclass (EACCES: PermissionError), so callers still can tell
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically (a crash leaves the old file or the new one, never half of it)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, payload: Any) -> None:
    """Write `payload` as indented, key-sorted JSON, atomically."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def seed_everything(seed: int) -> None:
    """Seed every RNG a step may touch; torch only if it is already imported (it is slow to import)."""
    random.seed(seed)
    np.random.seed(seed)
    import sys

    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed)


def configure_torch(seed: int, threads: int) -> None:
    """Seeds, deterministic kernels and a fixed thread count: two runs give the same weights, bit for bit.

    Here, at the bottom of the import graph, because every torch fit calls it (train's networks, the paper's
    head, paper mode); torch is imported only when it runs."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def worker_count(configured: int, jobs: int) -> int:
    """Processes for `jobs` independent fits: `configured`, or (0) one per CPU this process may use; at most jobs."""
    return max(1, min(configured or len(os.sched_getaffinity(0)), jobs))


def map_in_processes(function, arg_tuples: list[tuple], workers: int) -> list:
    """[function(*args) for args in arg_tuples], in order, on `workers` processes (1: in this process).

    Why: the CV folds and the bootstrap are independent, deterministic jobs (each fit seeds itself, torch on one
    thread), so running them side by side on the machine's cores changes no figure, only the wall time.
    Spawned, not forked: the parent may hold torch threads and MLflow state a forked child must not inherit.
    """
    if workers <= 1 or len(arg_tuples) <= 1:
        return [function(*args) for args in arg_tuples]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(arg_tuples)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return [future.result() for future in [pool.submit(function, *args) for args in arg_tuples]]


def git_commit() -> str:
    """The current git commit (with '-dirty' when the tree has changes), or 'unknown' outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def update_digest(digest: Any, path: str | Path) -> Any:
    """Feed a file's bytes into a hashlib `digest` in 1 MiB blocks, so a large file is never all in memory."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def hash_files(paths: list[Path]) -> str:
    """A content hash of files (sorted by path), used to tag MLflow runs with the data they saw."""
    digest = hashlib.md5()
    for path in sorted(paths):
        digest.update(str(path.name).encode())
        update_digest(digest, path)
    return digest.hexdigest()
