import sys
from pathlib import Path

# Test helpers (oracle_compare) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_report_header(config):
    from oracle_seed import replay_hint
    return f"randomized oracle: {replay_hint()}"
