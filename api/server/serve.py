"""`parktwin serve`: the settings, the safety checks, then uvicorn on one process (jobs, uploads and
pictures get their own worker processes)."""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from parktwin.api.server.settings import LOOPBACK_HOSTS, Settings


def check_bind(host: str, settings: Settings) -> None:
    """A server anyone on the network can reach needs a key, unless the operator says --insecure."""
    if host not in LOOPBACK_HOSTS and not settings.api_key and not settings.insecure:
        raise RuntimeError(f"refusing to serve {host} without PARKTWIN_API_KEY: anyone who can reach this address "
                           "could use the API; set PARKTWIN_API_KEY, serve 127.0.0.1, or pass --insecure")


def lock_data_dir(data_dir: Path):
    """Hold DATA_DIR/server.lock for the life of this process: two servers on one data directory would
    each mark the other's running jobs interrupted and run them twice. Returns the open lock file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "server.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise RuntimeError(f"{data_dir}: in use by another ParkTwin server (pid {owner}); give each server its "
                           "own --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def serve(host: str, port: int, data_dir: Path | None = None, access_log: bool = False, **overrides) -> None:
    import uvicorn

    from parktwin.api.server.app import create_app
    from parktwin.api.server.settings import settings_from_env
    settings = settings_from_env(data_dir, bind_host=host, **overrides)
    check_bind(host, settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if host not in LOOPBACK_HOSTS and not settings.api_key:
        logging.getLogger("parktwin.api").warning(
            "--insecure: listening on %s without PARKTWIN_API_KEY: anyone who can reach it can use the API", host)
    lock = lock_data_dir(settings.data_dir)
    try:
        # One server process: the job table, the park cache and the workers belong to it. Concurrency
        # comes from uvicorn's event loop and the thread pool that runs the solver routes; connections
        # beyond max_connections get a 503 from uvicorn before any route runs.
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=access_log,
                    timeout_graceful_shutdown=10, limit_concurrency=settings.max_connections)
    finally:
        lock.close()
