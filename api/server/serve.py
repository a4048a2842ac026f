"""`parktwin serve`: the settings, then uvicorn on one process (jobs get their own worker processes)."""
from __future__ import annotations

import logging
from pathlib import Path


def serve(host: str, port: int, data_dir: Path | None = None, access_log: bool = False, **overrides) -> None:
    import uvicorn

    from parktwin.api.server.app import create_app
    from parktwin.api.server.settings import settings_from_env
    settings = settings_from_env(data_dir, **overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        logging.getLogger("parktwin.api").warning(
            "listening on %s without PARKTWIN_API_KEY: anyone who can reach this address can use the API", host)
    # One server process: the job table, the park cache and the job workers belong to it. Concurrency
    # comes from uvicorn's event loop and the thread pool that runs the solver routes.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=access_log,
                timeout_graceful_shutdown=10)
