"""Generate the bundled example park `twin/example_park/` (synthetic; see docs/example-park.md).

    python -m parktwin.twin.example_generator twin/example_park

Everything comes from one seeded numpy generator, so the same seed writes byte-identical files:

* a smooth synthetic terrain (a tilted plane plus a few Gaussian hills, rescaled to 20-60 m);
* a 14 x 14-block street grid (15 x 15 intersections, 200 m apart) over it;
* three pressurised networks laid under the same streets, each offset by a few metres so the layers
  do not coincide on a map, each a random spanning tree of the grid plus a share of the remaining
  streets (so every network is connected and looped):
  - supply.inp     fresh water: municipal connection (reservoir) + elevated tank, H-W 100-400 mm;
  - reclaimed.inp  reclaimed water from the park plant (reservoir = its product pump station);
  - discharge.inp  pressurised wastewater mains to the park treatment plant (reservoir = sink), with
                   a pressure-sustaining valve at the plant inlet keeping the mains full;
* park.toml: eleven enterprises with outputs on the quota basis and close to the Hunan sector
  benchmarks (two sectors without a provincial quota, shown as such), value added from prices and
  value-added shares (docs/example-park.md), the plants, the city links and the targets, in the
  schema of `twin.park.load_park`.

Enterprise junctions carry base demand 0 (the park twin sets their demands); other junctions carry a
small background demand (minor users, public greening, small dischargers) so that each file also
solves on its own.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

N_BLOCKS = 14                 # blocks per side; (N_BLOCKS + 1)^2 intersections
SPACING_M = 200.0
ELEV_MIN_M, ELEV_MAX_M = 20.0, 60.0
DIAMETERS_MM = (100, 150, 200, 250, 300, 400)

# layer -> (id prefix, coordinate offset m, share of non-tree streets that also get a pipe)
LAYERS = {
    "supply": ("S", (-4.0, -4.0), 0.85),
    "reclaimed": ("R", (4.0, -4.0), 0.45),
    "discharge": ("D", (0.0, 5.0), 0.35),
}

# name, sector, product, annual output (product unit), value added (10k yuan/yr), needs by grade m³/d,
# recycling m³/d, consumption fraction, discharge fraction, shift hours, has a provincial quota.
# Outputs are on the quota's own basis (caustic soda as 100 % NaOH, beer in kL, fabric per 100 m) and are
# chosen so that fresh intake per unit sits 3-11 % below the sector's 2020 Hunan benchmark, except
# dyeing_west (about 7 % above: an older printing line). Value added is output times value added per
# unit, VA_PER_UNIT_YUAN below; docs/example-park.md gives the price and value-added share behind each.
VA_PER_UNIT_YUAN = {
    "steelworks": 1000.0,            # crude steel, EAF mini-mill: rebar ~3,300 yuan/t ex VAT in 2020 x ~30 %
    "chlor_alkali": 800.0,           # t of 100 % NaOH with its chlorine: ~1,700 yuan/t NaOH in 2020
    "acid_works": 150.0,             # t of acid; smelter/pyrite acid sold for 100-300 yuan/t in 2020
    "ammonia_plant": 625.0,          # t NH3; ~2,500 yuan/t x 25 %
    "soda_ash_works": 350.0,         # t soda ash; ~1,400 yuan/t x 25 %
    "electronic_chemicals": 2500.0,  # t of electronic-grade acid (high-purity product)
    "dyeing_east": 60.0,             # 100 m of fabric: processing fee ~1.5 yuan/m x 40 %
    "dyeing_west": 60.0,
    "paper_mill": 1300.0,            # t of uncoated printing paper; ~5,500 yuan/t x ~24 %
    "brewery": 1400.0,               # kL of beer; ~4,000 yuan/kL ex works x 35 %
    "food_plant": 2000.0,            # t of condiments and preserved vegetables
}
ENTERPRISES = (
    ("steelworks", "crude_steel", "crude steel, EAF (t)", 110_000,
     dict(process=700, boiler=180, domestic=60, cooling_makeup=1350, washing=150, greening=40),
     dict(cooling_circulation_m3d=95_000, cascade_use_m3d=1_200), 0.45, 0.50, 24, True),
    ("chlor_alkali", "caustic_soda", "caustic soda, 100 % NaOH basis (t)", 90_000,
     dict(process=1250, boiler=320, domestic=40, cooling_makeup=900, washing=110, greening=20),
     dict(cooling_circulation_m3d=48_000, cascade_use_m3d=600), 0.35, 0.60, 24, True),
    ("acid_works", "sulphuric_acid", "sulphuric acid from pyrite, 100 % basis (t)", 100_000,
     dict(process=650, boiler=420, domestic=30, cooling_makeup=950, washing=60, greening=20),
     dict(cooling_circulation_m3d=40_000, cascade_use_m3d=300), 0.55, 0.40, 24, True),
    ("ammonia_plant", "synthetic_ammonia", "synthetic ammonia, bituminous coal (t)", 40_000,
     dict(process=700, boiler=450, domestic=35, cooling_makeup=1200, washing=60, greening=25),
     dict(cooling_circulation_m3d=60_000, cascade_use_m3d=400), 0.50, 0.45, 24, True),
    ("soda_ash_works", "soda_ash", "soda ash, combined process (t)", 60_000,
     dict(process=520, boiler=200, domestic=25, cooling_makeup=450, washing=60, greening=15),
     dict(cooling_circulation_m3d=22_000, cascade_use_m3d=200), 0.40, 0.55, 24, True),
    # Electronic wet chemicals have no row in the Hunan table: shown without a quota, not filed under
    # industrial (pyrite) sulphuric acid.
    ("electronic_chemicals", "electronic_chemicals", "electronic-grade sulphuric acid (t)", 30_000,
     dict(process=220, boiler=40, domestic=30, cooling_makeup=60, washing=40, greening=10),
     dict(cooling_circulation_m3d=3_000, cascade_use_m3d=150), 0.20, 0.75, 24, False),
    ("dyeing_east", "dyed_fabric", "woven dyed fabric (100 m)", 480_000,
     dict(process=1650, boiler=260, domestic=80, cooling_makeup=60, washing=380, greening=20),
     dict(cooling_circulation_m3d=2_500, cascade_use_m3d=900), 0.12, 0.85, 24, True),
    ("dyeing_west", "dyed_fabric", "woven printed fabric (100 m)", 215_000,
     dict(process=820, boiler=140, domestic=50, cooling_makeup=30, washing=190, greening=10),
     dict(cooling_circulation_m3d=1_200, cascade_use_m3d=400), 0.12, 0.85, 16, True),
    ("paper_mill", "uncoated_printing_paper", "uncoated printing paper (t)", 52_000,
     dict(process=2050, boiler=220, domestic=40, cooling_makeup=150, washing=250, greening=20),
     dict(cooling_circulation_m3d=6_000, cascade_use_m3d=2_500), 0.15, 0.82, 24, True),
    ("brewery", "beer", "beer (kL)", 77_000,
     dict(process=720, boiler=90, domestic=45, cooling_makeup=140, washing=170, greening=15),
     dict(cooling_circulation_m3d=4_000, cascade_use_m3d=300), 0.18, 0.78, 16, True),
    # Food processing (condiments, preserved vegetables) has no row either; not filed under baijiu.
    ("food_plant", "food_processing", "condiments and preserved vegetables (t)", 20_000,
     dict(process=200, boiler=40, domestic=40, cooling_makeup=30, washing=60, greening=10),
     dict(cooling_circulation_m3d=800, cascade_use_m3d=100), 0.15, 0.80, 8, False),
)
# The park's own water per 10,000 yuan in its baseline year (synthetic history: the park used this share
# more water per yuan in 2020 than now), the year and price basis, and the plan's relative target.
INTENSITY_2020_FACTOR = 1.0 / 0.88
INTENSITY_PRICE_BASIS = "constant 2020 prices"
PARK_RECLAIMED_AS = "unconventional"


def _terrain(rng: np.random.Generator):
    """A smooth elevation function z(x, y) on the park square, rescaled to ELEV_MIN_M..ELEV_MAX_M."""
    size = N_BLOCKS * SPACING_M
    slope = rng.uniform(0.5, 1.0, 2) * np.array([1.0, 0.6])        # m per 100 m, rising to the NE
    hills = [(rng.uniform(0.15, 0.85) * size, rng.uniform(0.15, 0.85) * size,
              rng.uniform(6.0, 16.0) * rng.choice([1.0, 1.0, -0.6]), rng.uniform(350.0, 800.0))
             for _ in range(4)]

    def raw(x, y):
        z = slope[0] * x / 100.0 + slope[1] * y / 100.0
        for hx, hy, amp, sig in hills:
            z = z + amp * np.exp(-((x - hx) ** 2 + (y - hy) ** 2) / (2.0 * sig ** 2))
        return z

    fine = np.linspace(0.0, size, 141)
    fx, fy = np.meshgrid(fine, fine)
    lo, hi = float(raw(fx, fy).min()), float(raw(fx, fy).max())
    return lambda x, y: ELEV_MIN_M + (ELEV_MAX_M - ELEV_MIN_M) * (raw(x, y) - lo) / (hi - lo)


def _streets():
    n = N_BLOCKS + 1
    edges = []
    for r in range(n):
        for c in range(n):
            if c + 1 < n:
                edges.append(((r, c), (r, c + 1)))
            if r + 1 < n:
                edges.append(((r, c), (r + 1, c)))
    return edges


def _layout(rng: np.random.Generator, keep_share: float):
    """Random spanning tree of the street grid (Kruskal on shuffled streets) plus a share of the rest."""
    edges = _streets()
    order = rng.permutation(len(edges))
    parent = {}

    def find(a):
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    tree, rest = [], []
    for i in order:
        a, b = edges[i]
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            tree.append(i)
        else:
            rest.append(i)
    extra = [i for i, u in zip(rest, rng.random(len(rest))) if u < keep_share]
    return [edges[i] for i in sorted(tree + extra)]


def _hops(edges, source):
    """Street hops from `source` over the layer's pipes (breadth-first)."""
    adj = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    dist, frontier = {source: 0}, [source]
    while frontier:
        nxt = []
        for a in frontier:
            for b in adj[a]:
                if b not in dist:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        frontier = nxt
    return dist


def _diameter_mm(hops: int, trunk: bool, classes) -> int:
    """Larger near the source, one size larger on the trunk streets (every fourth street)."""
    size = len(classes)
    for k, limit in enumerate(classes):
        if hops < limit:
            size = k
            break
    idx = max(0, len(DIAMETERS_MM) - 1 - size + (1 if trunk else 0) - 1)
    return DIAMETERS_MM[min(idx, len(DIAMETERS_MM) - 1)]


class _Site:
    """Grid positions and terrain shared by the three layers."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.elev = _terrain(self.rng)
        n = N_BLOCKS + 1
        self.cells = [(r, c) for r in range(n) for c in range(n)]
        self.ground = {rc: round(float(self.elev(rc[1] * SPACING_M, rc[0] * SPACING_M)), 2) for rc in self.cells}
        self.max_ground = max(self.ground.values())
        boundary = [rc for rc in self.cells if min(rc) == 0 or max(rc) == N_BLOCKS]
        # Treatment and reclaimed plants share a site at the lowest boundary intersection; the municipal
        # connection enters at the boundary intersection farthest from them; the tank sits on the highest
        # interior ground.
        self.plant = min(boundary, key=lambda rc: (self.ground[rc], rc))
        self.municipal = max(boundary, key=lambda rc: ((rc[0] - self.plant[0]) ** 2 + (rc[1] - self.plant[1]) ** 2, rc))
        interior = [rc for rc in self.cells if 2 <= min(rc) and max(rc) <= N_BLOCKS - 2]
        self.tank = max(interior, key=lambda rc: (self.ground[rc], rc))
        self.enterprise_cells = self._place_enterprises(interior)

    def _place_enterprises(self, interior):
        taken = {self.plant, self.municipal, self.tank}
        cells = []
        candidates = [interior[i] for i in self.rng.permutation(len(interior))]
        for rc in candidates:
            if rc in taken or any(abs(rc[0] - o[0]) + abs(rc[1] - o[1]) < 4 for o in cells):
                continue
            cells.append(rc)
            if len(cells) == len(ENTERPRISES):
                break
        if len(cells) < len(ENTERPRISES):
            raise RuntimeError("could not place all enterprises; lower the spacing rule")
        return cells

    def xy(self, rc, layer):
        dx, dy = LAYERS[layer][1]
        return (round(rc[1] * SPACING_M + dx, 2), round(rc[0] * SPACING_M + dy, 2))


def _jid(layer, rc):
    return f"{LAYERS[layer][0]}{rc[0]:02d}{rc[1]:02d}"


def _build(site: _Site, layer: str, *, source, hop_classes, background_lps: float, roughness: float):
    import wntr

    edges = _layout(site.rng, LAYERS[layer][2])
    hops = _hops(edges, source)
    ent = set(site.enterprise_cells)
    wn = wntr.network.WaterNetworkModel()
    wn.options.hydraulic.headloss = "H-W"
    wn.options.hydraulic.inpfile_units = "LPS"
    wn.options.time.duration = 0
    wn.title = [f"ParkTwin example park (synthetic): {layer} network", "generated by twin/example_generator.py"]
    for rc in site.cells:
        demand = 0.0 if rc in ent else background_lps / 1000.0
        wn.add_junction(_jid(layer, rc), base_demand=demand, elevation=site.ground[rc],
                        coordinates=site.xy(rc, layer))
    for k, (a, b) in enumerate(edges):
        trunk = (a[0] == b[0] and a[0] % 4 == 0) or (a[1] == b[1] and a[1] % 4 == 0)
        d = _diameter_mm(min(hops[a], hops[b]), trunk, hop_classes)
        length = SPACING_M + (abs(site.ground[a] - site.ground[b]) ** 2 / (2 * SPACING_M))
        wn.add_pipe(f"{LAYERS[layer][0]}P{k + 1:03d}", _jid(layer, a), _jid(layer, b),
                    length=round(length, 2), diameter=d / 1000.0, roughness=roughness)
    return wn


def _offset(site, rc, layer, dx, dy):
    x, y = site.xy(rc, layer)
    return (round(x + dx, 2), round(y + dy, 2))


def _supply(site: _Site):
    wn = _build(site, "supply", source=site.municipal, hop_classes=(3, 6, 10, 15, 22),
                background_lps=0.05, roughness=120)
    head = round(site.max_ground + 35.0, 2)
    wn.add_reservoir("MUNICIPAL", base_head=head, coordinates=_offset(site, site.municipal, "supply", -60, -60))
    wn.add_pipe("S-INTAKE-1", "MUNICIPAL", _jid("supply", site.municipal), length=120.0, diameter=0.4, roughness=120)
    wn.add_pipe("S-INTAKE-2", "MUNICIPAL", _jid("supply", site.municipal), length=125.0, diameter=0.4, roughness=120)
    ground = site.ground[site.tank]
    wn.add_tank("TANK", elevation=round(head - 12.0, 2), init_level=6.0, min_level=1.0, max_level=10.0,
                diameter=18.0, coordinates=_offset(site, site.tank, "supply", 40, 40))
    wn.add_pipe("S-TANK", "TANK", _jid("supply", site.tank), length=60.0, diameter=0.3, roughness=120)
    assert head - 12.0 > ground
    return wn


def _reclaimed(site: _Site):
    wn = _build(site, "reclaimed", source=site.plant, hop_classes=(2, 5, 9, 14, 20),
                background_lps=0.02, roughness=130)
    head = round(site.max_ground + 30.0, 2)
    wn.add_reservoir("RECLAIMED_PLANT", base_head=head, coordinates=_offset(site, site.plant, "reclaimed", 60, 60))
    wn.add_pipe("R-OUTLET", "RECLAIMED_PLANT", _jid("reclaimed", site.plant), length=80.0, diameter=0.4,
                roughness=130)
    return wn


def _discharge(site: _Site):
    wn = _build(site, "discharge", source=site.plant, hop_classes=(3, 6, 10, 15, 22),
                background_lps=-0.03, roughness=110)
    ground = site.ground[site.plant]
    wn.add_junction("D-INLET", base_demand=0.0, elevation=ground, coordinates=_offset(site, site.plant, "discharge", 30, 30))
    wn.add_pipe("D-MAIN", _jid("discharge", site.plant), "D-INLET", length=50.0, diameter=0.4, roughness=110)
    wn.add_reservoir("WWTP", base_head=round(ground + 3.0, 2), coordinates=_offset(site, site.plant, "discharge", 60, 60))
    # The back-pressure valve keeps every main full: upstream head = highest ground + 5 m.
    setting = round(site.max_ground + 5.0 - ground, 2)
    wn.add_junction("D-OUTFALL", base_demand=0.0, elevation=ground,
                    coordinates=_offset(site, site.plant, "discharge", 45, 45))
    wn.add_valve("D-PSV", "D-INLET", "D-OUTFALL", diameter=0.4, valve_type="PSV", minor_loss=0.0,
                 initial_setting=setting)
    wn.add_pipe("D-FEED", "D-OUTFALL", "WWTP", length=20.0, diameter=0.4, roughness=110)
    return wn


def _write_inp(wn, path: Path):
    import wntr

    tmp = path.with_suffix(".tmp")
    wntr.network.write_inpfile(wn, str(tmp), units="LPS")
    # Drop WNTR's volatile header comments (file name, date) so that output is byte-reproducible.
    lines = tmp.read_text().splitlines()
    keep = [ln for ln in lines if not ln.startswith(";") or not any(k in ln for k in ("Filename", "Created", "WNTR"))]
    path.write_text("\n".join(keep) + "\n")
    tmp.unlink()


def _toml_value(v):
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float) and v.is_integer():
        return f"{v:.1f}"
    return repr(v)


def _park_toml(site: _Site) -> str:
    out = ["# Synthetic example park, generated by `python -m parktwin.twin.example_generator twin/example_park`.",
           "# Do not edit by hand: change twin/example_generator.py and regenerate.", "",
           "[park]", 'name = "Xiangjiang Example Industrial Park (synthetic)"', ""]
    total_discharge = 0.0
    total_reclaimable = 0.0
    total_fresh = 0.0
    total_va = 0.0
    for (name, sector, product, output, needs, recyc, cons, disch, shift, quota), rc in zip(ENTERPRISES,
                                                                                          site.enterprise_cells):
        total_discharge += disch * sum(needs.values())
        total_reclaimable += sum(needs[g] for g in ("cooling_makeup", "washing", "greening"))
        total_fresh += sum(needs[g] for g in ("process", "boiler", "domestic"))
        va = int(round(output * VA_PER_UNIT_YUAN[name] / 1e4))
        total_va += va
        out += [f"[enterprises.{name}]", f"sector = {_toml_value(sector)}"]
        out += [] if quota else ["no_provincial_quota = true"]
        out += [f"product = {_toml_value(product)}",
                f"annual_output = {output}", f"value_added_10k_yuan = {va}",
                f"consumption_fraction = {cons}", f"discharge_fraction = {disch}", f"shift_hours = {shift}",
                f"[enterprises.{name}.needs_m3d]"]
        out += [f"{k} = {v}" for k, v in needs.items()]
        out += [f"[enterprises.{name}.recycling]"] + [f"{k} = {v}" for k, v in recyc.items()]
        out += [f"[enterprises.{name}.junctions]"]
        out += [f'{layer} = "{_jid(layer, rc)}"' for layer in LAYERS]
        out.append("")
    ww_cap = int(round(total_discharge * 1.4, -3))
    rec_cap = int(round(total_reclaimable * 1.3, -3))
    # Sludge water and evaporation: about 0.5 % of the flow treated (assumption, docs/example-park.md).
    out += ["[plants.wastewater]", f"capacity_m3d = {ww_cap}", "losses_fraction = 0.005", "",
            "[plants.reclaimed]", f"capacity_m3d = {rec_cap}",
            # UF passes dissolved salts; a brackish RO membrane on secondary effluent (docs/example-park.md).
            "[[plants.reclaimed.units]]", 'name = "UF"', "recovery_fraction = 0.92", "salt_rejection_fraction = 0.0",
            "[[plants.reclaimed.units]]", 'name = "RO"', "recovery_fraction = 0.75", "salt_rejection_fraction = 0.98",
            "",
            # TDS, mg/L (assumptions, docs/example-park.md): soft river water, the city's filtered secondary
            # effluent, and a chemical park's salty combined wastewater (chlor-alkali, soda ash, dyeing).
            "[quality]", "city_fresh_tds_mg_l = 250", "city_reclaimed_tds_mg_l = 850", "wastewater_tds_mg_l = 2000",
            "",
            "[city]", f"fresh_head_m = {round(site.max_ground + 35.0, 2)}", 'fresh_reservoir = "MUNICIPAL"',
            "fresh_capacity_m3d = 30000",
            "reclaimed_offer_m3d = 3000", "wastewater_capacity_m3d = 5000", "reclaimed_to_city_m3d = 500", "",
            "[targets]", "reuse_rate_fraction = 0.94", "substitution_rate_fraction = 0.10",
            f"park_reclaimed_as = {_toml_value(PARK_RECLAIMED_AS)}",
            "[targets.water_per_10k_yuan]",
            # Fresh-only needs: the reclaimable needs are all served by reclaimed water in the base case.
            f"baseline_m3_per_10k_yuan = {round(total_fresh * 365 / total_va * INTENSITY_2020_FACTOR, 1)}",
            "baseline_year = 2020", f"price_basis = {_toml_value(INTENSITY_PRICE_BASIS)}",
            "reduction_fraction = 0.16", ""]
    return "\n".join(out)


def _meters_toml(site: _Site) -> str:
    """[meters]: the intakes, the outfall, the supply tank's level and every enterprise's three connections
    (twin/park_meters.py); what `parktwin meters` and `parktwin park reconcile` read."""
    out = ["# Meters (twin/park_meters.py): readings in a ledger attach to the model through these.",
           '[meters.intake_1]', 'network = "supply"', 'element = "S-INTAKE-1"', 'quantity = "flow_m3s"', 'role = "intake"',
           '[meters.intake_2]', 'network = "supply"', 'element = "S-INTAKE-2"', 'quantity = "flow_m3s"', 'role = "intake"',
           '[meters.reclaimed_in]', 'network = "reclaimed"', 'element = "R-OUTLET"', 'quantity = "flow_m3s"',
           'role = "intake"',
           '[meters.outfall]', 'network = "discharge"', 'element = "D-FEED"', 'quantity = "flow_m3s"', 'role = "outfall"',
           '[meters.tank_level]', 'network = "supply"', 'element = "TANK"', 'quantity = "level_m"', ""]
    for (name, *_rest), rc in zip(ENTERPRISES, site.enterprise_cells):
        for layer in LAYERS:
            out += [f"[meters.{name}_{layer}]", f'network = "{layer}"', f'element = "{_jid(layer, rc)}"',
                    'quantity = "flow_m3s"', 'role = "enterprise"', f'enterprise = "{name}"']
            if layer == "supply":
                out += [f"[meters.{name}_pressure]", 'network = "supply"', f'element = "{_jid(layer, rc)}"',
                        'quantity = "pressure_m"', 'role = "network"', f'enterprise = "{name}"']
        out.append("")
    return "\n".join(out)


README = """# Example park (synthetic)

This folder is **generated**; do not edit it by hand. It was made with

    python -m parktwin.twin.example_generator twin/example_park

(seed {seed}) by `twin/example_generator.py`; see `docs/example-park.md`.

The park, its enterprises, the terrain and the three networks are **synthetic**: plausible
numbers for a medium Hunan industrial park (chemicals, steel, dyeing, paper, beer and food,
electronic chemicals), not a survey of a real one; the sources of its outputs and value added are in
docs/example-park.md.

| file | contents |
|---|---|
| park.toml | {n_ent} enterprises, the two plants, city links, targets |
| supply.inp | fresh water: municipal connection + elevated tank, {n_s} junctions |
| reclaimed.inp | reclaimed water from the park plant, {n_r} junctions |
| discharge.inp | pressurised wastewater mains to the treatment plant, {n_d} junctions |
"""


def generate(folder, seed: int = 2024) -> dict[str, Path]:
    """Write park.toml, supply/reclaimed/discharge.inp and README.md into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    site = _Site(seed)
    paths = {}
    counts = {}
    for layer, build in (("supply", _supply), ("reclaimed", _reclaimed), ("discharge", _discharge)):
        wn = build(site)
        counts[layer] = wn.num_junctions
        paths[layer] = folder / f"{layer}.inp"
        _write_inp(wn, paths[layer])
    paths["park"] = folder / "park.toml"
    paths["park"].write_text(_park_toml(site) + _meters_toml(site))
    paths["readme"] = folder / "README.md"
    paths["readme"].write_text(README.format(seed=seed, n_ent=len(ENTERPRISES), n_s=counts["supply"],
                                             n_r=counts["reclaimed"], n_d=counts["discharge"]))
    return paths


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print("usage: python -m parktwin.twin.example_generator FOLDER [SEED]", file=sys.stderr)
        return 2
    paths = generate(argv[0], int(argv[1]) if len(argv) == 2 else 2024)
    for p in paths.values():
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
