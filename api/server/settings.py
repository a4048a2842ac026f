"""Server settings: one frozen dataclass, filled from `parktwin serve` options and PARKTWIN_* variables.

Options given on the command line win over the environment; the environment wins over the defaults.
The caps exist because the server runs user-supplied studies and parses user-supplied files: each one
bounds the memory, disk or CPU a single request can claim. docs/api.md lists every one with its variable.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

MIB = 2 ** 20
GIB = 2 ** 30
DAY_S = 86400
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class UploadLimits:
    """What an uploaded network may hold; checked in the upload worker before anything is solved."""
    max_nodes: int = 50_000                      # junctions, reservoirs and tanks (413 beyond)
    max_links: int = 100_000                     # pipes, pumps and valves (413 beyond)
    max_pattern_values: int = 1_000_000          # multipliers of all patterns together (413 beyond)
    max_control_lines: int = 10_000              # lines of [CONTROLS] and [RULES] together (413 beyond)
    max_enterprises: int = 1_000                 # enterprises in an uploaded park (413 beyond)
    min_time_step_s: int = 60                    # the grid the hydraulic, pattern and report steps share (422)
    max_report_rows: int = 10_081                # report times of a 7-day run (a 60 s report step; 422 beyond)
    longest_run_s: int = 7 * DAY_S               # the longest run the server makes of a network (a job)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    api_key: str | None = None                   # PARKTWIN_API_KEY; None: no key needed
    bind_host: str = "127.0.0.1"                 # --host: the address served
    insecure: bool = False                       # --insecure: serve a non-loopback address without a key
    allowed_hosts: tuple[str, ...] = field(default=())   # Host header names; empty: loopback names + --host
    max_upload_bytes: int = 32 * MIB             # a park zip or an .inp, as sent
    max_unzipped_bytes: int = 128 * MIB          # a park zip, uncompressed (zip bombs)
    max_zip_files: int = 64                      # entries in a park zip
    max_request_bytes: int = 1 * MIB             # any other request body (JSON)
    upload_limits: UploadLimits = field(default_factory=UploadLimits)
    worker_memory_bytes: int = 4 * GIB           # address space (RLIMIT_AS) of the upload and render workers
    parse_timeout_s: int = 60                    # reading and checking one upload
    render_timeout_s: int = 120                  # one picture
    lock_timeout_s: int = 30                     # waiting for a busy solver or renderer: then 503
    max_connections: int = 64                    # uvicorn's limit_concurrency: 503 beyond
    max_study_scenarios: int = 1_000_000         # scenarios in one Monte-Carlo job
    max_job_memory_bytes: int = 8 * GIB          # estimated peak memory of one job (413 beyond); its RLIMIT_AS
    max_job_disk_bytes: int = 20 * GIB           # estimated result file of one job (413 beyond)
    max_total_disk_bytes: int = 100 * GIB        # job files kept plus the estimates of unfinished jobs (413)
    max_queued_jobs: int = 100                   # jobs queued or running (429 beyond)
    job_retention_s: int = 7 * DAY_S             # finished jobs and their files are deleted this long after
    max_operations: int = 100                    # operations in one what-if
    max_workers: int = 1                         # Monte-Carlo jobs solved at the same time
    max_cached_parks: int = 16                   # parks (with their base runs) kept in memory, LRU
    ray_address: str | None = None               # jobs solve on this Ray cluster instead of locally
    cors_origins: tuple[str, ...] = field(default=())   # empty: no CORS headers at all

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite"


# setting -> environment variable, for the integer caps (docs/api.md lists the same)
ENV_INTS = {
    "max_upload_bytes": "PARKTWIN_MAX_UPLOAD_BYTES", "max_unzipped_bytes": "PARKTWIN_MAX_UNZIPPED_BYTES",
    "max_zip_files": "PARKTWIN_MAX_ZIP_FILES", "max_request_bytes": "PARKTWIN_MAX_REQUEST_BYTES",
    "worker_memory_bytes": "PARKTWIN_WORKER_MEMORY_BYTES", "parse_timeout_s": "PARKTWIN_PARSE_TIMEOUT_S",
    "render_timeout_s": "PARKTWIN_RENDER_TIMEOUT_S", "lock_timeout_s": "PARKTWIN_LOCK_TIMEOUT_S",
    "max_connections": "PARKTWIN_MAX_CONNECTIONS", "max_study_scenarios": "PARKTWIN_MAX_STUDY_SCENARIOS",
    "max_job_memory_bytes": "PARKTWIN_MAX_JOB_MEMORY_BYTES", "max_job_disk_bytes": "PARKTWIN_MAX_JOB_DISK_BYTES",
    "max_total_disk_bytes": "PARKTWIN_MAX_TOTAL_DISK_BYTES", "max_queued_jobs": "PARKTWIN_MAX_QUEUED_JOBS",
    "job_retention_s": "PARKTWIN_JOB_RETENTION_S", "max_operations": "PARKTWIN_MAX_OPERATIONS",
    "max_workers": "PARKTWIN_MAX_WORKERS", "max_cached_parks": "PARKTWIN_MAX_CACHED_PARKS",
}
UPLOAD_ENV_INTS = {
    "max_nodes": "PARKTWIN_MAX_NETWORK_NODES", "max_links": "PARKTWIN_MAX_NETWORK_LINKS",
    "max_pattern_values": "PARKTWIN_MAX_PATTERN_VALUES", "max_control_lines": "PARKTWIN_MAX_CONTROL_LINES",
    "max_enterprises": "PARKTWIN_MAX_ENTERPRISES",
    "min_time_step_s": "PARKTWIN_MIN_TIME_STEP_S", "max_report_rows": "PARKTWIN_MAX_REPORT_ROWS",
}


def env_name(setting: str) -> str:
    """The variable that sets `setting` (for messages that name the limit a request ran into)."""
    return ENV_INTS.get(setting) or UPLOAD_ENV_INTS[setting]


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


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in os.environ.get(name, "").split(",") if o.strip())


def settings_from_env(data_dir: Path | None = None, **overrides) -> Settings:
    """Settings from PARKTWIN_* variables, then `overrides` (None values are ignored)."""
    env = os.environ
    base_dir = data_dir or Path(env.get("PARKTWIN_DATA_DIR") or Path.home() / ".local/share/parktwin")
    defaults = {f.name: f.default for f in fields(Settings)}
    upload_defaults = {f.name: f.default for f in fields(UploadLimits)}
    values = dict(
        data_dir=Path(base_dir).expanduser().resolve(),
        api_key=env.get("PARKTWIN_API_KEY") or None,
        allowed_hosts=_env_list("PARKTWIN_ALLOWED_HOSTS"),
        upload_limits=UploadLimits(**{k: _env_int(v, upload_defaults[k]) for k, v in UPLOAD_ENV_INTS.items()}),
        ray_address=env.get("PARKTWIN_RAY_ADDRESS") or None,
        cors_origins=_env_list("PARKTWIN_CORS_ORIGINS"),
        **{k: _env_int(v, defaults[k]) for k, v in ENV_INTS.items()},
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def host_names(settings: Settings) -> tuple[str, ...]:
    """Host header values the server answers to. Without a configured list: the loopback names, and the
    bound address when it is a specific one; a wildcard bind (0.0.0.0, ::) with no list answers any
    name, which only a keyed server is allowed to do (serve refuses it otherwise)."""
    if settings.allowed_hosts:
        return settings.allowed_hosts
    if settings.bind_host in ("0.0.0.0", "::", ""):
        return ("*",)
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, settings.bind_host)))
