"""Rule premises on a junction's demand read EPANET's NodeDemand: delivered demand, emitter and leaks."""
from __future__ import annotations

import pytest

from oracle_compare import NETWORKS
from test_oracle_networks import DAY_S, _compare

NET1 = NETWORKS / "epanet-tests" / "network_one" / "NET1.inp"

# Junction 12's demand (150 gpm base) follows NET1's pattern between 75 and 240 gpm over the day: the rule
# shuts the pump in the peak hours and the tank drains instead.
RULE = """
[RULES]
RULE peak
IF JUNCTION 12 DEMAND ABOVE 200
THEN PUMP 9 STATUS IS CLOSED
ELSE PUMP 9 STATUS IS OPEN
"""


@pytest.mark.skipif(not NET1.exists(), reason="../shared/networks is not beside the repository")
def test_a_rule_on_junction_demand_follows_epanet(tmp_path):
    text = NET1.read_text()
    start = text.index("[CONTROLS]")
    end = text.index("[", start + 1)
    path = tmp_path / "net1-demand-rule.inp"
    path.write_text(text[:start] + RULE + "\n" + text[end:])
    _compare(path, DAY_S, tmp_path)
