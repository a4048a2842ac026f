"""Sector unit-product intake benchmarks from the Hunan industrial water-efficiency plan (2023-2025).

The numbers are transcribed from the table "重点行业主要产品水效提升预期目标" of the consultation draft
(征求意见稿, 2023-09-26). That table gives the **2020 provincial average** intake per unit of product
(column "2020 年单位产品取水量", note 1: "全省平均值，由研究单位测算") and an **expected reduction by 2025**
per sector (note 2: "预期性指标"). They are benchmarks the plan asks enterprises to beat, not the legal
用水定额 (those are in the provincial quota standard), which is why both values are kept: callers choose
the 2020 baseline or the 2025 expectation.

Intake here is 取水量: conventional sources only (see docs/indicators.md).
"""
from __future__ import annotations

from dataclasses import dataclass

SOURCE_DOC = "shared/reference/hunan-industrial-water-efficiency-plan-2023-2025.md"
# Line numbers refer to SOURCE_DOC as stored; the section is 三、主要目标, table 重点行业主要产品水效提升预期目标.
_SECTION = "三、主要目标, 表 重点行业主要产品水效提升预期目标"


@dataclass(frozen=True)
class SectorQuota:
    sector: str            # lookup key, ASCII snake case
    product: str           # product name (English / Chinese as printed in the plan)
    unit: str              # unit of product the quota is expressed per
    quota_m3_per_unit: float  # 2020 provincial average intake, m³ per unit of product
    reduction_2025: float  # expected fractional reduction by 2025 for the sector (plan 三、主要目标)
    source: str            # document, section and line

    @property
    def quota_2025(self) -> float:
        """Expected 2025 intake per unit: the 2020 average less the sector's expected reduction."""
        return self.quota_m3_per_unit * (1.0 - self.reduction_2025)

    def quota(self, year: str = "2020") -> float:
        if year == "2020":
            return self.quota_m3_per_unit
        if year == "2025":
            return self.quota_2025
        raise ValueError(f"quota year must be '2020' or '2025', got {year!r}")


def _src(line: int) -> str:
    return f"{SOURCE_DOC}, {_SECTION}, line {line}"


# Sector reduction rates are stated once per industry in the table (the first row of each group) and
# repeated in the text of line 71: steel and paper 10 %, petrochemical/chemical and non-ferrous 5 %,
# textile and food 15 %. Ethylene (line 80) has no value ("—") and is therefore left out.
QUOTAS: tuple[SectorQuota, ...] = (
    SectorQuota("crude_steel", "crude steel 粗钢", "t", 3.5, 0.10, _src(78)),
    SectorQuota("petroleum_refining", "petroleum refining 石油炼制", "t", 0.56, 0.05, _src(79)),
    SectorQuota("synthetic_ammonia", "synthetic ammonia, bituminous coal 合成氨（烟煤）", "t", 12.0, 0.05, _src(81)),
    SectorQuota("sulphuric_acid", "industrial sulphuric acid, pyrite 工业硫酸（硫铁矿）", "t", 4.3, 0.05, _src(82)),
    SectorQuota("caustic_soda", "caustic soda 烧碱", "t", 7.1, 0.05, _src(83)),
    SectorQuota("soda_ash", "soda ash, combined (Hou) process 纯碱（联碱法）", "t", 5.0, 0.05, _src(84)),
    SectorQuota("dyed_fabric", "woven dyed/printed fabric 机织印染布", "100 m", 1.6, 0.15, _src(85)),
    SectorQuota("bleached_chemical_pulp", "bleached chemical wood pulp 漂白化学木浆", "t", 70.0, 0.10, _src(86)),
    SectorQuota("uncoated_printing_paper", "uncoated printing and writing paper 未涂布印刷书写纸", "t", 18.0, 0.10,
                _src(87)),
    SectorQuota("beer", "beer 啤酒", "kL", 4.5, 0.15, _src(88)),
    # Baijiu has two rows: 原酒 is the distilled base liquor, 成品酒 the blended, bottled finished liquor.
    SectorQuota("baijiu_base_liquor", "baijiu base liquor 白酒 原酒", "kL", 51.0, 0.15, _src(89)),
    SectorQuota("baijiu_finished", "baijiu finished liquor 白酒 成品酒", "kL", 7.0, 0.15, _src(90)),
    SectorQuota("crude_lead", "crude lead 粗铅", "t", 4.0, 0.05, _src(91)),
    SectorQuota("zinc_hydrometallurgy", "zinc smelting, hydrometallurgical 锌冶炼（湿法）", "t", 10.0, 0.05, _src(92)),
)

_BY_KEY = {q.sector: q for q in QUOTAS}


def sectors() -> tuple[str, ...]:
    return tuple(_BY_KEY)


def quota_for(sector: str) -> SectorQuota:
    """The quota row of a sector key; ValueError listing the valid keys when unknown."""
    try:
        return _BY_KEY[sector]
    except (KeyError, TypeError):
        raise ValueError(f"unknown sector {sector!r}; valid sectors: {', '.join(sorted(_BY_KEY))}") from None
