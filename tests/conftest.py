import sys
from pathlib import Path

# Test helpers (oracle_compare) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
