"""The plan stage: where a budget of greening, trees or cool roofs cools the most (docs/plan.md)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from uhi.errors import ConfigError, InputError, NoDataError
from uhi.stages.runner import StageSpec

if TYPE_CHECKING:
    from uhi.config import Config, PlanConfig
    from uhi.scenario import ScenarioModel
    from uhi.workspace import Workspace

__all__ = ["SPEC", "run", "INTERVENTION_VARIABLE"]

log = logging.getLogger("uhi.plan")

# the covariate each intervention changes
INTERVENTION_VARIABLE = {"greening": "ndvi", "trees": "ndvi", "cool_roofs": "albedo"}

_UNITS = {"people": "person-degC", "area": "degC (area-weighted city mean)"}


@dataclass(frozen=True)
class _Options:
    """Every feasible cell's whole change, cost and benefit."""

    index: np.ndarray  # rows of the valid cells
    change: np.ndarray  # covariate units
    cost: np.ndarray
    units: np.ndarray  # m2 greened / trees / m2 of roof
    benefit: np.ndarray
    own: np.ndarray


# ---------------------------------------------------------------------------------------------
# inputs


def _exposure_cells(ws: Workspace) -> Path:
    return ws.path("exposure", "cells.parquet")


def _objective_weights(objective: str, ws: Workspace, cells_v: Any) -> tuple[np.ndarray, str, str]:
    """Per-cell weight p of the objective, its unit, and a note on where it came from."""
    import pandas as pd

    if objective == "area":
        area = cells_v["area_m2"].to_numpy(float)
        return area / area.sum(), _UNITS["area"], "cell areas (area_m2 of compute/cells.parquet)"
    column = "population" if objective == "people" else objective.split(":", 1)[1]
    path = _exposure_cells(ws)
    if not path.is_file():
        raise InputError(
            f"--objective {objective} needs population per cell from {ws.relative(path)}, which is missing; "
            "set exposure.population_path and run `uhi exposure` first, or use --objective area"
        )
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if column not in names:
        groups = [c for c in names if c not in ("cell", "zone", "area_m2", "population", "lst_c", "anomaly_c",
                                                "gi_class", "ndvi", "site_coverage", "geometry")]
        raise ConfigError(
            f"--objective {objective}: {ws.relative(path)} has no column {column!r} (groups: {groups or 'none'}); "
            "list it in exposure.groups and rerun `uhi exposure`, or pick one of those"
        )
    table = pd.read_parquet(path, columns=["cell", column])
    values = cells_v[["cell"]].merge(table, on="cell", how="left")[column].to_numpy(float)
    if not np.isfinite(values).any() or np.nansum(values) <= 0:
        raise InputError(
            f"--objective {objective}: {ws.relative(path)} holds no {column} counts (exposure ran without "
            "exposure.population_path); set it and run `uhi exposure`, or use --objective area"
        )
    unit = "person-degC" if objective == "people" else f"{column}-person-degC"
    return np.nan_to_num(values, nan=0.0), unit, f"{column} per cell from {ws.relative(path)}"


def _fit_record(summary: dict[str, Any], fitted: ScenarioModel) -> dict[str, Any]:
    models = summary.get("models", summary)
    entry = models[fitted.kind]
    if "coefficients" in entry:
        return dict(entry)
    per_year = {str(k): v for k, v in entry.get("years", entry).items() if isinstance(v, dict)}
    key = str(fitted.year) if fitted.year is not None else next(k for k in per_year if not k.isdigit())
    return dict(per_year[key])


def _cell_column(cells_v: Any, name: str) -> np.ndarray:
    if name in cells_v.columns:
        return cells_v[name].to_numpy(dtype=float)
    return np.full(len(cells_v), np.nan)


def _whole_changes(p: PlanConfig, intervention: str, base_v: Any, cells_v: Any, area_m2: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, list[str]]:
    """Each cell's largest feasible change of the covariate, its cost and its amount (m2 or trees)."""
    notes: list[str] = []
    cover = _cell_column(cells_v, "site_coverage")
    water = np.nan_to_num(_cell_column(cells_v, "water_share"), nan=0.0)
    if intervention == "cool_roofs":
        if not np.isfinite(cover).any():
            raise InputError(
                "--intervention cool_roofs needs roof area per cell (site_coverage of compute/cells.parquet is "
                "empty): set buildings.path to a footprints layer and rerun `uhi compute`"
            )
        roof_m2 = np.nan_to_num(cover, nan=0.0) * area_m2
        albedo = base_v["albedo"].to_numpy(float)
        # roofs assumed at the cell's mean albedo before coating; the cell's albedo is the
        # area-weighted mean of its surfaces (the same weighting compute uses for pixels)
        full = roof_m2 / area_m2 * np.clip(p.roof_albedo - albedo, 0.0, None)
        change = np.minimum(full, p.max_albedo_increase)
        units = roof_m2 * np.divide(change, full, out=np.zeros_like(full), where=full > 0)
        return change, units * p.cool_roof_cost_per_m2, units, "m2 of roof coated", notes
    if not np.isfinite(cover).all():
        notes.append("cells without site_coverage (no buildings layer) count all their non-water ground as open")
    open_m2 = np.clip(1.0 - np.nan_to_num(cover, nan=0.0) - water, 0.0, 1.0) * area_m2 * p.open_share
    ndvi = base_v["ndvi"].to_numpy(float)
    if intervention == "greening":
        full = open_m2 / area_m2 * np.clip(p.greening_ndvi - ndvi, 0.0, None)
        change = np.minimum(full, p.max_ndvi_increase)
        units = open_m2 * np.divide(change, full, out=np.zeros_like(full), where=full > 0)
        return change, units * p.greening_cost_per_m2, units, "m2 greened", notes
    trees = np.floor(open_m2 / p.tree_spacing_m2)
    per_tree = p.tree_crown_m2 / area_m2 * np.clip(p.tree_ndvi - ndvi, 0.0, None)
    full = trees * per_tree
    change = np.minimum(full, p.max_ndvi_increase)
    units = np.divide(change, per_tree, out=np.zeros_like(full), where=per_tree > 0)
    return change, units * p.tree_cost, units, "trees planted", notes


# ---------------------------------------------------------------------------------------------
# the plan


def _naive(opts: _Options, budget: float, key: np.ndarray, divisible: bool) -> float:
    """Benefit of spending the budget on the cells with the largest ``key`` first."""
    from uhi.stats.plan import fill_in_order

    order = np.argsort(-key, kind="stable")
    frac = fill_in_order(opts.cost, budget, order, divisible=divisible)
    return float(frac @ opts.benefit)


def _curve(opts: _Options, budget: float) -> Any:
    import pandas as pd

    from uhi.stats.plan import budget_curve

    top = float(opts.cost.sum())
    # the whole range, and finer up to twice the budget where a planner reads the curve
    spends = np.unique(np.concatenate([np.linspace(0.0, top, 41), np.linspace(0.0, min(2 * budget, top), 21)]))
    gained = budget_curve(opts.benefit, opts.cost, spends)
    slope = np.gradient(gained, spends) if spends.size > 1 else np.zeros_like(spends)
    return pd.DataFrame({"spend": spends, "benefit": gained, "benefit_per_extra_money": slope,
                         "share_of_budget": spends / budget})


def run(config: Config, ws: Workspace) -> dict[str, Any]:
    """Compute the plan of ``config.plan`` and write plan/ (nothing is written on bad input)."""
    import geopandas as gpd

    from uhi.scenario import _weights_matrix, fitted_cells, modelled_cells, read_scenario_model
    from uhi.stats.plan import SpatialSolver, allocate, benefit_interval, marginal_benefits

    t0 = time.perf_counter()
    p = config.plan
    if p.budget is None:
        raise ConfigError("no budget: give --budget AMOUNT or set plan.budget in the config")
    budget = float(p.budget)
    # as `uhi scenario`: never combine new compute outputs with an old model or exposure
    ws.require_current(("fetch", "compute", "model", "exposure"), "uhi plan")
    for needed, stage in ((ws.cells, "compute"), (ws.panel, "compute"), (ws.model_summary, "model")):
        if not Path(needed).is_file():
            raise InputError(f"{ws.relative(needed)} is missing from {ws.root}; run uhi {stage} first")
    summary = json.loads(Path(ws.model_summary).read_text(encoding="utf-8"))
    fitted = read_scenario_model(summary, p.model)
    var = INTERVENTION_VARIABLE[p.intervention]
    if var not in fitted.x:
        raise ConfigError(
            f"--intervention {p.intervention} changes {var!r}, which model {fitted.kind!r} does not use "
            f"(x: {list(fitted.x)}); add {var} to model.x and rerun `uhi model`, or pick another intervention"
        )
    # the same cells (water rule), baseline year and W as `uhi scenario`, so the two agree exactly
    fc = fitted_cells(config, ws, summary, fitted)
    y, year = fc.y, fc.year
    cells_v, base_v = modelled_cells(fc, fitted)
    area_m2 = cells_v["area_m2"].to_numpy(float)
    weights, unit, weight_note = _objective_weights(p.objective, ws, cells_v)

    change, cost, amount, amount_unit, notes = _whole_changes(p, p.intervention, base_v, cells_v, area_m2)
    needs_w = fitted.rho is not None or var in fitted.lag_coefficients
    w = _weights_matrix(cells_v, fitted.weights) if needs_w else None
    solver = SpatialSolver(w, fitted.rho) if (w is not None and fitted.rho is not None) else None
    b = fitted.coefficients[var]
    theta = fitted.lag_coefficients.get(var, 0.0)
    t_solve = time.perf_counter()
    mb = marginal_benefits(weights, b, lag_coefficient=theta, w=w, solver=solver)
    t_solve = time.perf_counter() - t_solve
    feasible = (change > 0) & (cost > 0) & (mb.total * change > 0)
    if not feasible.any():
        why = (f"its coefficient in model {fitted.kind!r} is {b:+.3g} degC per unit, so raising it does not cool"
               if b >= 0 and theta >= 0 else "no cell has room for the change (caps, open ground or roofs)")
        raise NoDataError(f"no cell can be cooled by {p.intervention} ({var}): {why}")
    idx = np.flatnonzero(feasible)
    opts = _Options(idx, change[idx], cost[idx], amount[idx], mb.total[idx] * change[idx], mb.own[idx] * change[idx])
    cheapest = float(opts.cost.min())
    if budget < cheapest:
        raise InputError(
            f"budget {budget:,.2f} {p.currency} is below the cheapest change ({p.intervention} of one cell costs "
            f"{cheapest:,.2f} {p.currency}); raise --budget"
        )
    divisible = not p.whole_cells
    if budget > float(opts.cost.sum()):
        notes.append(f"the budget exceeds the cost of every feasible change ({float(opts.cost.sum()):,.2f} "
                     f"{p.currency}): the plan buys all of them and leaves the rest unspent")
    t_alloc = time.perf_counter()
    fraction, method = allocate(opts.benefit, opts.cost, budget, divisible=divisible)
    t_alloc = time.perf_counter() - t_alloc

    chosen = np.zeros(len(cells_v))
    chosen[opts.index] = fraction * opts.change
    record = _fit_record(summary, fitted)
    se = record.get("std_errors") or {}
    interval = benefit_interval(
        chosen, mb, coefficient=b, coefficient_se=float(se.get(var, np.nan)),
        lag_coefficient=theta, lag_coefficient_se=float(se.get(f"W_{var}", np.nan)),
        rho_se=float(record.get("rho_se") or np.nan) if fitted.rho is not None else 0.0,
        w=w, solver=solver, level=p.interval,
    )
    interval_out = {k: (v if np.isfinite(v) else None) for k, v in interval.items()}
    total = float(fraction @ opts.benefit)
    lst = base_v[y].to_numpy(float)[opts.index]
    naive = {
        "hottest_cells": _naive(opts, budget, lst, divisible),
        "most_populated_cells": None,
    }
    pop_note = None
    try:
        people, _, _ = _objective_weights("people", ws, cells_v)
        naive["most_populated_cells"] = _naive(opts, budget, people[opts.index], divisible)
    except (InputError, ConfigError) as exc:
        pop_note = f"no population for the most-populated naive plan: {exc}"
    curve = _curve(opts, budget)

    table = gpd.GeoDataFrame(
        {
            "cell": cells_v["cell"].to_numpy()[opts.index],
            "variable": var,
            "change": opts.change,
            "amount": opts.units,
            "cost": opts.cost,
            "benefit": opts.benefit,
            "own_benefit": opts.own,
            "spillover_benefit": opts.benefit - opts.own,
            "benefit_per_cost": opts.benefit / opts.cost,
            "fraction": fraction,
            "selected": fraction > 0,
            "chosen_change": fraction * opts.change,
            "chosen_cost": fraction * opts.cost,
            "chosen_benefit": fraction * opts.benefit,
            f"{y}_baseline": lst,
            "objective_weight": weights[opts.index],
        },
        geometry=cells_v.geometry.to_numpy()[opts.index],
        crs=cells_v.crs,
    )
    out = _summary(config, fitted, var, y, year, unit, weight_note, amount_unit, method, budget, total, table,
                   interval_out, naive, pop_note, notes, len(cells_v))
    out["water_cells"] = fc.water
    out["seconds"] = {"marginal_benefits": round(t_solve, 4), "allocation": round(t_alloc, 4),
                      "total": round(time.perf_counter() - t0, 3)}
    # every check has passed: only now is anything written
    _write(ws, config, table, curve, out, cells_v, fc.working_crs)
    log.info("plan: %s of %s %s on %d cells cools %.4g %s (naive hottest %.4g)", p.intervention,
             f"{out['total_cost']:,.0f}", p.currency, out["cells_selected"], total, unit, naive["hottest_cells"])
    return {"intervention": p.intervention, "objective": p.objective, "model": fitted.kind,
            "budget": budget, "total_cost": round(out["total_cost"], 2), "total_benefit": total,
            "unit": unit, "cells_selected": out["cells_selected"]}


def _summary(config: Config, fitted: ScenarioModel, var: str, y: str, year: int, unit: str, weight_note: str,
             amount_unit: str, method: str, budget: float, total: float, table: Any, interval: dict[str, float | None],
             naive: dict[str, float | None], pop_note: str | None, notes: list[str], cells: int) -> dict[str, Any]:
    p = config.plan
    sel = table["selected"].to_numpy()
    naive_gain = {k: (None if v is None else total - v) for k, v in naive.items()}
    return {
        "intervention": p.intervention,
        "variable": var,
        "objective": p.objective,
        "unit": unit,
        "objective_weights": weight_note,
        "currency": p.currency,
        "budget": budget,
        "total_cost": float(table["chosen_cost"].sum()),
        "total_benefit": total,
        "own_benefit": float((table["fraction"] * table["own_benefit"]).sum()),
        "spillover_benefit": float((table["fraction"] * table["spillover_benefit"]).sum()),
        "interval": interval,
        "interval_method": ("delta method from the coefficients' standard errors (and rho's), treated as "
                            "uncorrelated: model/summary.json stores no covariances"),
        "naive_plans": naive,
        "gain_over_naive": naive_gain,
        "allocation": method,
        "divisible": not p.whole_cells,
        "cells_feasible": int(len(table)),
        "cells_selected": int(sel.sum()),
        "cells_modelled": cells,
        "amount": float((table["fraction"] * table["amount"]).sum()),
        "amount_unit": amount_unit,
        "model": fitted.kind,
        "model_year": fitted.year,
        "baseline_year": year,
        "coefficient": fitted.coefficients[var],
        "lag_coefficient": fitted.lag_coefficients.get(var),
        "rho": fitted.rho,
        "weights": fitted.weights,
        "y": y,
        "parameters": p.model_dump(mode="json"),
        "costs_note": "illustrative default costs unless set in the config (sources in docs/plan.md)",
        "notes": [*notes, *([pop_note] if pop_note else [])],
        "columns": _COLUMNS,
    }


_COLUMNS = {
    "cell": "cell quadkey",
    "variable": "the covariate the intervention changes (ndvi or albedo)",
    "change": "the cell's whole feasible change of the variable (covariate units)",
    "amount": "what the whole change buys: m2 greened, trees planted or m2 of roof coated",
    "cost": "cost of the whole change, in plan.currency",
    "benefit": "cooling of the whole change in the objective's unit, own plus spill-over: -p' dLST",
    "own_benefit": "the part from the cell's own LST change before any neighbour effect (-b p_j change)",
    "spillover_benefit": "benefit - own_benefit: cooling carried to and back from neighbours by the spatial lag (and SLX)",
    "benefit_per_cost": "benefit / cost, the greedy's ranking",
    "fraction": "share of the whole change the plan buys (1, or less for the one partial cell)",
    "selected": "fraction > 0",
    "chosen_change / chosen_cost / chosen_benefit": "fraction times change / cost / benefit",
    "<y>_baseline": "the cell's modelled variable in the baseline year (the hottest-cells naive plan ranks by it)",
    "objective_weight": "p: people, group count or area share of the cell",
}


def _changes_frame(table: Any) -> Any:
    """The chosen changes in the format `uhi scenario --changes` reads: one 'add' polygon per cell."""
    import geopandas as gpd

    sel = table.loc[table["selected"]]
    var = str(sel["variable"].iloc[0])
    return gpd.GeoDataFrame(
        {"name": sel["cell"].to_numpy(), "change": "add", var: sel["chosen_change"].to_numpy(float)},
        geometry=sel.geometry.to_numpy(), crs=table.crs,
    )


def _write(ws: Workspace, config: Config, table: Any, curve: Any, summary: dict[str, Any], cells_v: Any,
           working_crs: Any) -> None:
    import pandas as pd

    from uhi.writers.excel import write_workbook
    from uhi.writers.geojson import write_geojson
    from uhi.writers.parquet import write_geoparquet

    out_dir = ws.stage_dir("plan")
    write_geoparquet(table, out_dir / "cells.parquet")
    chosen = table.loc[table["selected"]]
    write_geojson(chosen, out_dir / "chosen.geojson")
    # 15 decimals: the polygons re-project onto the cells exactly, so a cell is covered with share 1
    # and its neighbours with none (7 decimals would leave ~1e-4 slivers in `uhi scenario`); the
    # change amounts keep every digit (float_digits=None) so the scenario replays the plan exactly
    write_geojson(_changes_frame(table), out_dir / "changes.geojson", precision=15, float_digits=None)
    ws.write_text(out_dir / "budget_curve.csv", curve.to_csv(index=False))
    city = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    sheets = {
        "chosen": pd.DataFrame(chosen.drop(columns=chosen.geometry.name)),
        "budget_curve": curve,
        "summary": pd.DataFrame({"figure": list(city), "value": [str(v) for v in city.values()]}),
    }
    write_workbook(out_dir / "plan.xlsx", sheets, notes=_COLUMNS)
    if "png" in config.outputs.formats:
        _write_figures(out_dir, config, table, curve, summary, cells_v, working_crs)
    ws.write_json(out_dir / "summary.json", summary)


def _write_figures(out_dir: Path, config: Config, table: Any, curve: Any, summary: dict[str, Any], cells_v: Any,
                   working_crs: Any) -> None:
    import geopandas as gpd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from uhi.writers.maps import render_value_map, save_map

    name = config.city.name
    values = np.zeros(len(cells_v))
    pos = {c: i for i, c in enumerate(cells_v["cell"].to_numpy())}
    rows = [pos[c] for c in table["cell"]]
    values[rows] = table["chosen_benefit"].to_numpy(float)
    frame = gpd.GeoDataFrame({"chosen_benefit": values}, geometry=cells_v.geometry.to_numpy(), crs=cells_v.crs)
    fig = render_value_map(
        # from 0: the cells left out are white, the chosen ones blue by their cooling
        frame, "chosen_benefit", cmap="Blues", working_crs=working_crs, limits=(0.0, max(float(values.max()), 1e-12)),
        title=f"{name}: {summary['intervention']} plan, {summary['total_cost']:,.0f} {summary['currency']} "
              f"on {summary['cells_selected']} cells",
        label=f"cooling of the cell's change ({summary['objective']})", units=summary["unit"],
    )
    save_map(fig, out_dir / "plan_map.png")
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(curve["spend"], curve["benefit"], color="#2166ac", lw=2, label="optimised (greedy by benefit per cost)")
    ax.axvline(summary["budget"], color="#b2182b", ls="--", lw=1, label=f"budget {summary['budget']:,.0f}")
    for key, colour in (("hottest_cells", "#ef8a62"), ("most_populated_cells", "#999999")):
        v = summary["naive_plans"].get(key)
        if v is not None:
            ax.scatter([summary["budget"]], [v], color=colour, zorder=3, label=f"naive: {key.replace('_', ' ')}")
    ax.set_xlabel(f"spend ({summary['currency']})")
    ax.set_ylabel(f"cooling ({summary['unit']})")
    ax.set_title(f"{name}: benefit against spend, {summary['intervention']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_map(fig, out_dir / "budget_curve.png")


def _inputs(config: Config, ws: Workspace) -> list[Path]:
    files = [ws.cells, ws.panel, ws.model_summary]
    if _exposure_cells(ws).is_file():
        files.append(_exposure_cells(ws))
    return files


SPEC = StageSpec(name="plan", config_sections=("plan", "model", "outputs"), inputs=_inputs, run=run)
