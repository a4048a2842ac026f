"""Parks and networks the server knows: the bundled example park and uploads under the data directory.

    DATA_DIR/parks/<id>/park.toml, supply.inp, reclaimed.inp, discharge.inp, meta.json
    DATA_DIR/networks/<id>/network.inp, meta.json

Ids are generated here (never taken from a client) and path parameters must match ID_RE before they
touch the file system, so no request can name a path. An upload is checked and read by `untrusted`
(the server's sandboxed upload worker, api.server.uploads) before it is stored, with a meta.json of its
summary, so that listing never loads a park. Loaded parks and their base-case runs are cached
in memory: a what-if then costs one coupled run, not two. The cache keeps the `max_cached_parks` uploaded
parks used last, and the bundled example always, so uploads cannot grow the server's memory without bound.
"""
from __future__ import annotations

import io
import json
import re
import secrets
import shutil
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path, PurePosixPath

from parktwin.api.server.errors import ApiError, register_root
from parktwin.api.server.settings import UploadLimits

EXAMPLE_ID = "example"
ID_RE = re.compile(r"^(?:example|[pn]-[0-9a-f]{12})$")
PARK_FILES = ("park.toml", "supply.inp", "reclaimed.inp", "discharge.inp")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str | None, default: str) -> str:
    """A display name for an upload: last component, harmless characters only."""
    base = PurePosixPath(str(name or "").replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base).strip("._")[:100]
    return base or default


def _in_process(target: str, args: tuple):
    import importlib
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(*args)


class Registry:
    def __init__(self, data_dir: Path, example_dir: Path, max_unzipped_bytes: int, max_zip_files: int,
                 max_cached_parks: int = 16, limits: UploadLimits = UploadLimits(), untrusted=_in_process,
                 lock_timeout_s: float = 30.0):
        """`untrusted(target, args)` runs a function of api.server.uploads on an upload: the server passes
        one that runs it in a sandboxed worker; the default runs it here (tests of the registry alone)."""
        self.parks_dir = data_dir / "parks"
        self.networks_dir = data_dir / "networks"
        for d in (self.parks_dir, self.networks_dir):
            d.mkdir(parents=True, exist_ok=True)
            # Staging folders of uploads a killed server never finished: nothing refers to them.
            for stale in d.glob(".upload-*"):
                shutil.rmtree(stale, ignore_errors=True)
        self.example_dir = example_dir
        self.max_unzipped_bytes, self.max_zip_files = max_unzipped_bytes, max_zip_files
        self.limits, self._untrusted, self.lock_timeout_s = limits, untrusted, lock_timeout_s
        register_root(data_dir)
        register_root(example_dir)
        self._lock = threading.Lock()
        self.max_cached_parks = max(1, int(max_cached_parks))
        self._parks: OrderedDict[str, object] = OrderedDict()          # least recently used first
        self._base: dict[tuple[str, int], object] = {}
        self._run_locks: dict[tuple[str, int], threading.Lock] = {}

    def _touch(self, park_id: str) -> None:
        """Mark `park_id` used now and forget the parks used longest ago beyond the cap (lock held)."""
        if park_id in self._parks:
            self._parks.move_to_end(park_id)
        evictable = [p for p in self._parks if p != EXAMPLE_ID]
        for old in evictable[:max(0, len(evictable) - self.max_cached_parks)]:
            del self._parks[old]
            for key in [k for k in self._base if k[0] == old]:
                del self._base[key]
                self._run_locks.pop(key, None)

    def cached_park_ids(self) -> list[str]:
        with self._lock:
            return list(self._parks)

    # ------------------------------------------------------------------ parks
    def park_dir(self, park_id: str) -> Path:
        if not ID_RE.fullmatch(park_id) or park_id.startswith("n-"):
            raise ApiError(404, f"no park {park_id!r}", "park_id")
        path = self.example_dir if park_id == EXAMPLE_ID else self.parks_dir / park_id
        if not (path / "park.toml").is_file():
            raise ApiError(404, f"no park {park_id!r}", "park_id")
        return path

    def park(self, park_id: str):
        with self._lock:
            cached = self._parks.get(park_id)
            if cached is not None:
                self._touch(park_id)
                return cached
        from parktwin.twin.park import load_park
        park = load_park(self.park_dir(park_id))
        with self._lock:
            park = self._parks.setdefault(park_id, park)
            self._touch(park_id)
            return park

    def park_summary(self, park_id: str) -> dict:
        """{"name", "enterprises"} without loading the park (listing parks must not churn the cache)."""
        path = self.park_dir(park_id)
        if park_id == EXAMPLE_ID:
            park = self.park(EXAMPLE_ID)
            return {"name": park.name, "enterprises": len(park.enterprises)}
        meta = path / "meta.json"
        if not meta.is_file():       # uploaded before summaries were kept: read once, in the worker
            meta.write_text(json.dumps(self._untrusted("parktwin.api.server.uploads:read_park",
                                                       (str(path), self.limits))))
        return json.loads(meta.read_text())

    def park_ids(self) -> list[str]:
        found = sorted(p.name for p in self.parks_dir.iterdir() if ID_RE.fullmatch(p.name) and (p / "park.toml").is_file())
        return [EXAMPLE_ID] + found

    def base_result(self, park_id: str, duration_s: int):
        """The park's base-case run, computed once per (park, duration) even under concurrent requests.
        A request that waits longer than the lock timeout for another's run gets a 503."""
        key = (park_id, int(duration_s))
        park = self.park(park_id)          # first: an unknown id is a 404 and never gets a lock
        with self._lock:
            if key in self._base:
                self._touch(park_id)
                return self._base[key]
            run_lock = self._run_locks.setdefault(key, threading.Lock())
        if not run_lock.acquire(timeout=self.lock_timeout_s):
            raise ApiError(503, f"park {park_id}: its base case is still being run by another request; "
                                "try again shortly", None)
        try:
            with self._lock:
                if key in self._base:
                    return self._base[key]
            from parktwin.twin.coupled import run_park
            result = run_park(park, duration_s=int(duration_s))
            with self._lock:
                if park_id in self._parks:       # not evicted meanwhile: a result of a forgotten park is not kept
                    self._base[key] = result
            return result
        finally:
            run_lock.release()
            with self._lock:                     # done: later requests find the result (or run it anew)
                if self._run_locks.get(key) is run_lock:
                    del self._run_locks[key]

    def add_park_zip(self, data: bytes) -> str:
        """Unpack a park zip safely, validate it with the park loader, store it; returns the new id."""
        files = self._read_park_zip(data)
        park_id = "p-" + secrets.token_hex(6)
        staging = self.parks_dir / f".upload-{park_id}"
        staging.mkdir()
        try:
            for name, content in files.items():
                (staging / name).write_bytes(content)
            summary = self._untrusted("parktwin.api.server.uploads:read_park", (str(staging), self.limits))
            (staging / "meta.json").write_text(json.dumps(summary))
            final = self.parks_dir / park_id
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return park_id

    def _read_park_zip(self, data: bytes) -> dict[str, bytes]:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError):
            # a damaged central directory shows as any of these (an unknown version, a name not UTF-8)
            raise ApiError(422, "the upload is not a zip archive (or a damaged one)", "file") from None
        with archive:
            infos = archive.infolist()
            if len(infos) > self.max_zip_files:
                raise ApiError(422, f"the zip has {len(infos)} entries, more than the cap of {self.max_zip_files}",
                               "file")
            declared = sum(i.file_size for i in infos)
            if declared > self.max_unzipped_bytes:
                raise ApiError(422, f"the zip unpacks to {declared} bytes, more than the cap of "
                                    f"{self.max_unzipped_bytes}", "file")
            for info in infos:
                _check_member(info)
            # macOS' Finder adds __MACOSX/ (resource forks) beside the zipped folder: not part of the park,
            # and counting it as a second top folder would hide the park's files.
            files = [i for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
            prefix = _common_folder([i.filename for i in files])
            out: dict[str, bytes] = {}
            budget = self.max_unzipped_bytes
            for info in files:
                rel = info.filename[len(prefix):]
                if rel not in PARK_FILES:
                    continue          # READMEs and the like travel along in zips; only the park is kept
                # Read at most the remaining budget + 1: a header that lies about the size is caught here.
                try:
                    with archive.open(info) as fh:
                        content = fh.read(budget + 1)
                except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
                    # corrupt data, a bad CRC, an encrypted entry, an unsupported compression method
                    raise ApiError(422, f"zip entry {info.filename!r}: cannot be unpacked ({exc})", "file") from None
                budget -= len(content)
                if budget < 0:
                    raise ApiError(422, f"the zip unpacks to more than the cap of {self.max_unzipped_bytes} bytes",
                                   "file")
                out[rel] = content
        missing = [n for n in PARK_FILES if n not in out]
        if missing:
            where = f" (inside the folder {prefix.rstrip('/')!r})" if prefix else ""
            raise ApiError(422, f"the zip lacks {', '.join(missing)}{where}: a park is park.toml, supply.inp, "
                                "reclaimed.inp and discharge.inp", missing[0])
        return out

    # ------------------------------------------------------------------ networks
    def network_path(self, network_id: str) -> Path:
        if not ID_RE.fullmatch(network_id) or not network_id.startswith("n-"):
            raise ApiError(404, f"no network {network_id!r}", "network_id")
        path = self.networks_dir / network_id / "network.inp"
        if not path.is_file():
            raise ApiError(404, f"no network {network_id!r}", "network_id")
        return path

    def network_ids(self) -> list[str]:
        return sorted(p.name for p in self.networks_dir.iterdir()
                      if ID_RE.fullmatch(p.name) and (p / "network.inp").is_file())

    def network_meta(self, network_id: str) -> dict:
        path = self.network_path(network_id)
        return json.loads((path.parent / "meta.json").read_text())

    def add_network(self, data: bytes, filename: str) -> str:
        network_id = "n-" + secrets.token_hex(6)
        staging = self.networks_dir / f".upload-{network_id}"
        staging.mkdir()
        try:
            inp = staging / "network.inp"
            inp.write_bytes(data)
            counts = self._untrusted("parktwin.api.server.uploads:read_network", (str(inp), filename, self.limits))
            (staging / "meta.json").write_text(json.dumps({"name": filename, **counts}))
            staging.rename(self.networks_dir / network_id)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return network_id


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ApiError(422, f"zip entry {name!r}: absolute paths are not allowed", "file")
    if ".." in parts:
        raise ApiError(422, f"zip entry {name!r}: a path that climbs out of its folder ('..') is not allowed",
                       "file")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ApiError(422, f"zip entry {name!r}: symbolic links are not allowed", "file")


def _common_folder(names: list[str]) -> str:
    """'park/' when every file sits in one top folder (a zipped folder), else ''."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""
