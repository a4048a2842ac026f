"""Pictures of a reconciliation: measured against modelled over the period (PNG, matplotlib off screen)."""
from __future__ import annotations

from pathlib import Path

GROUPS = (("boundary", "Boundary flows: intakes and outfall", ("intake", "outfall"), "flow_m3s", 1e3, "L/s"),
          ("pressures", "Pressures at the meters", None, "pressure_m", 1.0, "m"),
          ("levels", "Tank levels", None, "level_m", 1.0, "m"))


def reconcile_pictures(rec: dict, out_dir: Path) -> list[tuple[str, Path]]:
    """(caption, file) of each picture written; groups without meters are skipped."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title, roles, quantity, scale, unit in GROUPS:
        meters = [m for m in rec["meters"] if m["quantity"] == quantity and (roles is None or m["role"] in roles)]
        if key == "pressures":
            meters = sorted(meters, key=lambda m: -abs(m["bias"]))[:6]
        if not meters:
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
        for i, m in enumerate(meters):
            t_h = [t / 3600 for t in m["series"]["t_s"]]
            colour = f"C{i % 10}"
            ax.plot(t_h, [v * scale for v in m["series"]["measured"]], ".", ms=3, color=colour,
                    label=f"{m['id']} measured")
            ax.plot(t_h, [v * scale for v in m["series"]["modelled"]], "-", lw=1.2, color=colour,
                    label=f"{m['id']} modelled")
        ax.set_xlabel(f"hours from {rec['from']}")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="best")
        fig.tight_layout()
        path = out_dir / f"reconcile_{key}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append((f"{title}: measured (dots) against modelled (lines)", path))
    return written
