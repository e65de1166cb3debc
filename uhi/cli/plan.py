"""`uhi plan`: where a budget of greening, trees or cool roofs cools the most people."""

from __future__ import annotations

import math
import re
from pathlib import Path

import click

from uhi.cli.options import config_arg, force_opt, set_opt, workdir_opt

__all__ = ["plan"]

_MODELS = ("ols", "slx", "lag", "error", "fe", "panel_fe")


def budget_handler(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A positive, finite amount of money."""
    if value is None:
        return None
    try:
        amount = float(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number; give an amount such as 250000", ctx=ctx, param=param) from None
    if not math.isfinite(amount) or amount <= 0:
        raise click.BadParameter(f"must be a positive amount of money, got {value!r}", ctx=ctx, param=param)
    return amount


def objective_handler(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """people, area or group:NAME."""
    if value is None or re.fullmatch(r"people|area|group:.+", value):
        return value
    raise click.BadParameter(f"{value!r} is not an objective; use people, area or group:NAME", ctx=ctx, param=param)


@click.command("plan")
@config_arg
@click.option("--budget", callback=budget_handler, metavar="AMOUNT",
              help="Money to spend, in plan.currency [default: plan.budget].")
@click.option("--intervention", type=click.Choice(["greening", "cool_roofs", "trees"]), default=None,
              help="What to buy [default: plan.intervention, greening].")
@click.option("--objective", callback=objective_handler, metavar="OBJECTIVE",
              help="people (population from uhi exposure), area, or group:NAME [default: plan.objective, people].")
@click.option("--model", type=click.Choice(_MODELS), default=None,
              help="Fitted model to plan with [default: model/summary.json's best model].")
@workdir_opt
@set_opt
@force_opt
def plan(
    config: Path,
    budget: float | None,
    intervention: str | None,
    objective: str | None,
    model: str | None,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
) -> None:
    """Choose the cells where a budget cools the most, against the fitted spatial model.

    Reads compute/, model/ and (for --objective people or group:NAME) exposure/cells.parquet;
    writes plan/ (cells.parquet, chosen.geojson, changes.geojson for `uhi scenario --changes`,
    plan.xlsx, budget_curve.csv/.png, plan_map.png, summary.json). Recorded in the manifest:
    an unchanged plan is skipped unless --force. Exit codes: 0 done, 2 bad budget, option,
    config or missing input (model/, exposure/), 3 nothing the intervention can cool, 1 failure.
    """
    from uhi.cli.common import build_run_config, print_outcomes
    from uhi.stages.plan import SPEC
    from uhi.stages.runner import execute
    from uhi.workspace import Workspace

    extra = {"plan.budget": budget, "plan.intervention": intervention, "plan.objective": objective,
             "plan.model": model}
    cfg = build_run_config(config, workdir=workdir, set_values=set_values, extra=extra)
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        outcome = execute(SPEC, cfg, ws, force=force)
    print_outcomes([outcome], ws.root)
