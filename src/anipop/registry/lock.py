"""Registering safely among other writers and under kills: one registration at a time, and none left half done.

Why apart from the registration itself: the lock (a registered model whose creation is atomic, in sqlite and on a
server), the signal handlers and the parent watcher are about processes, not models; register.py's steps run
inside them and roll back what an interruption leaves.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from anipop.core.utils import redact

log = logging.getLogger(__name__)


LOCK_SUFFIX = ".lock"


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner ran on this host and its process is gone (a remote owner ages out instead)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def promotion_lock(client, name: str, timeout_s: float, stale_s: float) -> Iterator[None]:
    """Hold `<name>.lock` (a registered model: its creation is atomic, in sqlite and on a server) for the block.

    A lock whose owner died on this host, or older than `stale_s`, is broken; waiting longer than
    `timeout_s` is a TimeoutError naming the lock and its holder.
    """
    from mlflow.exceptions import MlflowException

    lock = f"{name}{LOCK_SUFFIX}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_registered_model(lock, tags={"owner": process_owner(), "acquired_at": f"{time.time():.0f}"},
                                           description=f"held while anipop registers a version of {name}")
            break
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        try:
            held = client.get_registered_model(lock)
        except MlflowException:
            continue  # released between our two requests: try again at once
        owner, since = held.tags.get("owner", "?"), float(held.tags.get("acquired_at", "0") or 0)
        if owner_is_dead(owner) or time.time() - since > stale_s:
            log.warning("registry: breaking the lock %s left by %s (dead or older than %ss)", lock, owner, stale_s)
            try:
                client.delete_registered_model(lock)
            except MlflowException:
                pass
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"registry lock {lock} still held by {owner} after {timeout_s:.0f}s; another "
                               f"registration is running (delete the registered model {lock} if it is not)")
        time.sleep(0.5)
    try:
        yield
    finally:
        try:
            client.delete_registered_model(lock)
        except MlflowException as err:
            log.error("registry: could not release %s (%s); the next registration breaks it once stale", lock,
                      redact(err))


class RegistrationInterrupted(SystemExit):
    """SIGTERM/SIGHUP (or the parent's death) during a registration: unwind so it is rolled back."""


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception, and end an orphan: when the process that started us (dvc, a
    shell) dies, a registration must not finish unseen and be repeated by the next `dvc repro`."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers only work in the main thread (Prefect runs tasks in workers)
        return

    def interrupt(signum, _frame):
        raise RegistrationInterrupted(128 + signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    parent, done = os.getppid(), threading.Event()

    def watch_parent() -> None:
        while not done.wait(0.5):
            if os.getppid() != parent:
                log.error("registry: the process that started this registration died; rolling it back")
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch_parent, name="anipop-parent-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
