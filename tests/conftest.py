import sys
from pathlib import Path

# Test helpers (oracle_compare) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_report_header(config):
    from oracle_seed import replay_hint
    return f"randomized oracle: {replay_hint()}"


def pytest_terminal_summary(terminalreporter):
    # The header is hidden under -q (make test): the seed is repeated at the end, where it is always shown.
    from oracle_seed import replay_hint
    terminalreporter.write_line(f"randomized oracle: {replay_hint()}")
