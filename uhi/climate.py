"""Long-term warming under RCP8.5: the shipped cited table or a user CSV, interpolated by year."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uhi.errors import InputError

__all__ = ["WarmingTable", "load_warming_table", "SHIPPED_SOURCE", "SHIPPED_SOURCE_CANADA"]

SHIPPED_SOURCE = (
    "IPCC AR5 WG1 SPM (2013) Table SPM.2, RCP8.5 annual global mean surface air temperature change "
    "vs 1986-2005"
)
SHIPPED_SOURCE_CANADA = (
    "UPPER BOUND, not a regional projection: IPCC AR5 WG1 SPM (2013) Table SPM.2 global RCP8.5 "
    "air temperature change x 2 (Canada's annual warming is about twice the global, Canada's "
    "Changing Climate Report 2019, ch. 4; less in summer in the south)"
)


@dataclass(frozen=True)
class WarmingTable:
    """Warming (degC) by year relative to the table's reference period.

    Attributes
    ----------
    years, delta_c
        Sorted table points; linear interpolation between them, the end values held outside.
    low_c, high_c
        Likely range when the table has one (else None).
    source
        Where the numbers come from (the shipped citation or the user's file).
    """

    years: np.ndarray
    delta_c: np.ndarray
    low_c: np.ndarray | None
    high_c: np.ndarray | None
    source: str

    def at(self, year: float | np.ndarray) -> np.ndarray:
        """Warming at the given year(s), linear between table points, held flat outside."""
        return np.interp(np.asarray(year, dtype=float), self.years, self.delta_c)

    def added(self, baseline_year: float, years: np.ndarray) -> np.ndarray:
        """Warming to add to an observed baseline: delta(year) - delta(baseline_year).

        The baseline already contains the warming up to its own year, so only the difference
        is added (otherwise warming since the reference period would be counted twice).
        """
        return self.at(years) - self.at(baseline_year)

    def range_added(self, baseline_year: float, years: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Likely-range bounds of ``added`` when the table has them."""
        if self.low_c is None or self.high_c is None:
            return None
        yrs = np.asarray(years, dtype=float)
        lo = np.interp(yrs, self.years, self.low_c) - np.interp(baseline_year, self.years, self.low_c)
        hi = np.interp(yrs, self.years, self.high_c) - np.interp(baseline_year, self.years, self.high_c)
        return lo, hi


def _parse(text: str, origin: str, region: str | None) -> WarmingTable:
    import io

    import pandas as pd

    try:
        df = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"warming table {origin} is not a readable CSV: {exc}; expect columns year,delta_c") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if not {"year", "delta_c"} <= set(df.columns):
        raise InputError(
            f"warming table {origin} needs columns year,delta_c (got {', '.join(df.columns)}); "
            "e.g. a header line 'year,delta_c'"
        )
    if "region" in df.columns:
        wanted = region or "global"
        if wanted not in set(df["region"].astype(str)):
            raise InputError(
                f"region {wanted!r} not in warming table {origin} "
                f"(regions: {', '.join(sorted(set(df['region'].astype(str))))})"
            )
        df = df[df["region"].astype(str) == wanted]
    elif region not in (None, "global"):
        raise InputError(
            f"warming table {origin} has no region column, so forecast.rcp_region {region!r} cannot "
            "be chosen; add a region column or leave rcp_region at global"
        )
    years = pd.to_numeric(df["year"], errors="coerce").to_numpy(dtype=float)
    delta = pd.to_numeric(df["delta_c"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(years) & np.isfinite(delta))
    if bad.any() or years.size == 0:
        raise InputError(
            f"warming table {origin} has {int(bad.sum())} non-numeric year/delta_c value(s) "
            f"or no rows; every row needs a year and a warming in degC"
        )
    if np.unique(years).size != years.size:
        raise InputError(f"warming table {origin} repeats a year; give one delta_c per year")
    order = np.argsort(years)

    def optional(col: str) -> np.ndarray | None:
        if col not in df.columns:
            return None
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)[order]
        return v if np.isfinite(v).all() else None

    return WarmingTable(
        years=years[order],
        delta_c=delta[order],
        low_c=optional("delta_low_c"),
        high_c=optional("delta_high_c"),
        source=origin,
    )


def load_warming_table(path: Path | str | None = None, *, region: str | None = None) -> WarmingTable:
    """Read a warming table: the user's CSV (year, delta_c[, delta_low_c, delta_high_c]) or the
    shipped RCP8.5 table (IPCC AR5 WG1 SPM Table SPM.2; ``region`` 'global' or 'canada', the
    latter global x 2: an upper bound for summer in southern Canada, not a projection).

    Raises
    ------
    InputError
        Missing file, missing columns, non-numeric or repeated years.
    """
    if path is None:
        text = importlib.resources.files("uhi").joinpath("data", "rcp85.csv").read_text(encoding="utf-8")
        table = _parse(text, "shipped rcp85.csv", region)
        source = SHIPPED_SOURCE_CANADA if region == "canada" else SHIPPED_SOURCE
        return WarmingTable(table.years, table.delta_c, table.low_c, table.high_c, source)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"warming table not found: {p}; set forecast.rcp_table to a CSV of year,delta_c")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"warming table {p} is not UTF-8 text; save it as CSV") from None
    return _parse(text, str(p), region)
