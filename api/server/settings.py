"""Server settings: one frozen dataclass, filled from `parktwin serve` options and PARKTWIN_* variables.

Options given on the command line win over the environment; the environment wins over the defaults.
The caps exist because the server runs user-supplied studies and parses user-supplied files: each one
bounds the memory or CPU a single request can claim.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MIB = 2 ** 20


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    api_key: str | None = None                   # PARKTWIN_API_KEY; None: no key needed
    max_upload_bytes: int = 32 * MIB             # a park zip or an .inp, as sent
    max_unzipped_bytes: int = 128 * MIB          # a park zip, uncompressed (zip bombs)
    max_zip_files: int = 64                      # entries in a park zip
    max_request_bytes: int = 1 * MIB             # any other request body (JSON)
    max_study_scenarios: int = 1_000_000         # scenarios in one Monte-Carlo job
    max_operations: int = 100                    # operations in one what-if
    max_workers: int = 1                         # Monte-Carlo jobs solved at the same time
    max_cached_parks: int = 16                   # parks (with their base runs) kept in memory, LRU
    ray_address: str | None = None               # jobs solve on this Ray cluster instead of locally
    cors_origins: tuple[str, ...] = field(default=())   # empty: no CORS headers at all

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name}: must be >= 1, got {value}")
    return value


def settings_from_env(data_dir: Path | None = None, **overrides) -> Settings:
    """Settings from PARKTWIN_* variables, then `overrides` (None values are ignored)."""
    env = os.environ
    base_dir = data_dir or Path(env.get("PARKTWIN_DATA_DIR") or Path.home() / ".local/share/parktwin")
    origins = tuple(o.strip() for o in env.get("PARKTWIN_CORS_ORIGINS", "").split(",") if o.strip())
    values = dict(
        data_dir=Path(base_dir).expanduser().resolve(),
        api_key=env.get("PARKTWIN_API_KEY") or None,
        max_upload_bytes=_env_int("PARKTWIN_MAX_UPLOAD_BYTES", Settings.max_upload_bytes),
        max_unzipped_bytes=_env_int("PARKTWIN_MAX_UNZIPPED_BYTES", Settings.max_unzipped_bytes),
        max_zip_files=_env_int("PARKTWIN_MAX_ZIP_FILES", Settings.max_zip_files),
        max_request_bytes=_env_int("PARKTWIN_MAX_REQUEST_BYTES", Settings.max_request_bytes),
        max_study_scenarios=_env_int("PARKTWIN_MAX_STUDY_SCENARIOS", Settings.max_study_scenarios),
        max_operations=_env_int("PARKTWIN_MAX_OPERATIONS", Settings.max_operations),
        max_workers=_env_int("PARKTWIN_MAX_WORKERS", Settings.max_workers),
        max_cached_parks=_env_int("PARKTWIN_MAX_CACHED_PARKS", Settings.max_cached_parks),
        ray_address=env.get("PARKTWIN_RAY_ADDRESS") or None,
        cors_origins=origins,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
