"""Untrusted work out of the server process: a long-lived spawned worker per kind of work (uploads,
pictures) with a bounded address space (RLIMIT_AS) and a time limit per call.

A call names a function by "module:function" and passes picklable arguments. The worker answers
("ok", value), ("api", status, detail, field) for an ApiError, or ("error", message). A call that runs
past its time limit, runs out of memory or kills the worker (VTK aborting, the kernel's OOM killer) ends
that worker; the next call spawns a fresh one. One call at a time per worker: a caller that waits
longer than the lock timeout gets a 503, so no request thread waits without bound.

This module is imported in the worker (spawn), so it imports nothing of the web stack at module level.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading

log = logging.getLogger("parktwin.api")


class SandboxFailure(Exception):
    """The worker could not answer: `reason` is 'timeout', 'memory' or 'crashed'."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _limit_memory(memory_bytes: int) -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _worker(conn, memory_bytes: int, warm: tuple[str, ...], parent_pid: int) -> None:
    from parktwin.api.server.worker import die_with_parent
    die_with_parent(parent_pid)
    _limit_memory(memory_bytes)
    for module in warm:                 # imported once here, so that a call pays only for its own work
        try:
            importlib.import_module(module)
        except ImportError as exc:      # the call that needs it will say so; the worker still serves others
            log.warning("%s: %s", module, exc)
    from parktwin.api.server.errors import ApiError
    while True:
        try:
            target, args = conn.recv()
        except EOFError:                # the server closed the pipe: nothing more to do
            return
        try:
            module, name = target.split(":")
            conn.send(("ok", getattr(importlib.import_module(module), name)(*args)))
        except ApiError as exc:
            conn.send(("api", exc.status, exc.detail, exc.field))
        except MemoryError:
            # The heap may be fragmented or half-built: answer, then leave for a fresh worker.
            conn.send(("memory", ""))
            os._exit(3)
        except Exception as exc:  # noqa: BLE001  the caller maps it; this worker stays usable
            conn.send(("error", " ".join(f"{type(exc).__name__}: {exc}".split())[:2000]))


class Sandbox:
    def __init__(self, name: str, memory_bytes: int, warm: tuple[str, ...] = ()):
        self.name, self.memory_bytes, self.warm = name, memory_bytes, warm
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None

    def start(self) -> None:
        """Spawn the worker now (it imports its modules while the server starts)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._discard()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, name=f"parktwin-{self.name}", daemon=True,
                                       args=(child, self.memory_bytes, self.warm, os.getpid()))
        self._proc.start()
        child.close()
        self._conn = parent

    def _discard(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def stop(self) -> None:
        with self._lock:
            self._discard()

    def call(self, target: str, args: tuple, timeout_s: float, lock_timeout_s: float):
        """The function's value; ApiError as the worker raised it; SandboxFailure when it could not answer.
        Raises TimeoutError when the worker stays busy with other calls for `lock_timeout_s`."""
        from parktwin.api.server.errors import ApiError
        if not self._lock.acquire(timeout=lock_timeout_s):
            raise TimeoutError(f"the {self.name} worker is busy")
        try:
            self._ensure()
            self._conn.send((target, args))
            if not self._conn.poll(timeout_s):
                self._discard()
                raise SandboxFailure("timeout", f"took longer than {timeout_s:g} s")
            try:
                answer = self._conn.recv()
            except (EOFError, OSError):
                self._proc.join(timeout=5)
                code = self._proc.exitcode
                self._discard()
                raise SandboxFailure("crashed", f"the {self.name} worker ended (exit code {code})") from None
            if answer[0] == "memory":
                self._discard()
                raise SandboxFailure("memory", f"ran out of the {self.memory_bytes} bytes of address space")
            if answer[0] == "api":
                raise ApiError(*answer[1:])
            if answer[0] == "error":
                raise RuntimeError(answer[1])
            return answer[1]
        finally:
            self._lock.release()
