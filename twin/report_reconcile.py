"""The reconciliation as a report section (Markdown): pure formatting of `twin.reconcile.reconcile`'s dict."""
from __future__ import annotations

NETWORK_ROWS = ("supply", "reclaimed", "discharge")


def _m3(x) -> str:
    return "n/a" if x is None else f"{x:,.1f}"


def reconcile_section(rec: dict, pictures=()) -> list[str]:
    """`pictures`: (caption, path relative to the report) pairs."""
    verified = rec["ledger"].get("verified")
    state = ("verified against its signatures" if verified else
             "not verified (no public key given)")
    lines = ["## The twin against its meters", "",
             f"Readings from {rec['from']} to {rec['to']} ({rec['days']} day(s)), ledger {state}. The model ran "
             f"with the metered flows of {len(rec['metered_enterprise_loads'])} enterprise meters "
             "(`parktwin park reconcile`, docs/reconcile.md). Volumes in m³ over the period.", ""]
    rows = []
    for name in NETWORK_ROWS:
        n = rec["networks"][name]
        inflow = n.get("intake_m3") if name != "discharge" else n.get("enterprises_m3")
        out = n.get("enterprises_m3") if name != "discharge" else n.get("outfall_m3")
        share = n.get("unexplained_fraction_of_intake")
        rows.append((name, _m3(inflow), _m3(out), _m3(n["storage_change_m3"]), f"**{_m3(n['unexplained_m3'])}**",
                     "" if share is None else f"{100 * share:.2f} %"))
    lines += ["| network | metered in | metered out | storage change | unexplained | of intake |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "In: the intake meters (discharge: the enterprises' discharge meters); out: the enterprise meters "
              "(discharge: the outfall). Unexplained in supply and reclaimed: real losses and meter error (non-revenue "
              "water); in discharge: exfiltration.", ""]
    books = rec["books"]
    metered_fresh = rec["networks"]["supply"].get("intake_m3")
    lines += ["| boundary | metered | books |", "| --- | ---: | ---: |",
              f"| fresh intake | {_m3(metered_fresh)} | {_m3(books['fresh_intake_booked_m3'])} |",
              f"| reclaimed into the network | {_m3(rec['networks']['reclaimed'].get('intake_m3'))} | "
              f"{_m3(books['reclaimed_intake_booked_m3'])} |",
              f"| enterprise discharge | {_m3(rec['networks']['discharge'].get('enterprises_m3'))} | "
              f"{_m3(books['discharge_booked_m3'])} |", ""]
    worst = sorted((m for m in rec["meters"] if m["quantity"] == "pressure_m"), key=lambda m: -abs(m["bias"]))[:5]
    if worst:
        lines += ["Pressure meters furthest from the model (measured − modelled; a leak the model does not have "
                  "pulls the measured pressures down):", "",
                  "| meter | element | measured mean (m) | bias (m) | RMS (m) |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {m['id']} | {m['element']} | {m['measured_mean']:.2f} | {m['bias']:+.2f} | "
                  f"{m['rms_difference']:.2f} |" for m in worst]
        lines.append("")
    for caption, rel_path in pictures:
        lines += [f"![{caption}]({rel_path})", "", f"*{caption}*", ""]
    return lines
