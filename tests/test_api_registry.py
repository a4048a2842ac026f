"""The server's park registry in-process: uploaded parks and their base runs are cached least recently
used first, the bundled example always kept, so uploads cannot grow the server's memory without bound."""
from __future__ import annotations

from parktwin.api.server.registry import EXAMPLE_ID, Registry
from test_api_whatif import EXAMPLE, park_zip


def test_the_cache_keeps_the_parks_used_last_and_always_the_example(tmp_path):
    registry = Registry(tmp_path / "data", EXAMPLE, max_unzipped_bytes=1 << 27, max_zip_files=64,
                        max_cached_parks=2)
    uploads = [registry.add_park_zip(park_zip()) for _ in range(3)]
    base = registry.base_result(EXAMPLE_ID, 0)
    for park_id in uploads:
        registry.base_result(park_id, 0)
    assert registry.cached_park_ids() == [EXAMPLE_ID, *uploads[1:]]
    assert registry.base_result(EXAMPLE_ID, 0) is base               # still cached, not run again
    registry.park(uploads[1])                                         # used now: uploads[2] is the oldest
    registry.park(uploads[0])                                         # loaded again from its folder
    assert registry.cached_park_ids() == [EXAMPLE_ID, uploads[1], uploads[0]]
    # a forgotten park is still served, from its files, with the same answer
    again = registry.base_result(uploads[2], 0)
    assert again.indicators == base.indicators
    assert registry.park_ids() == [EXAMPLE_ID, *sorted(uploads)]
