"""The HTTP API (`parktwin serve`): parks, networks, what-ifs and Monte-Carlo jobs. See docs/api.md."""
from parktwin.api.server.settings import Settings, settings_from_env

__all__ = ["Settings", "settings_from_env", "create_app", "serve"]


def create_app(settings: Settings):
    from parktwin.api.server.app import create_app as _create
    return _create(settings)


def serve(host: str, port: int, data_dir=None, **overrides) -> None:
    from parktwin.api.server.serve import serve as _serve
    _serve(host, port, data_dir, **overrides)
