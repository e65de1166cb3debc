"""`uhi demo`: write the synthetic demo city, optionally run the pipeline on it."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo"]


def _size_handler(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.5 <= value <= 100:
        raise click.BadParameter(f"must be 0.5-100 km, got {value:g}; e.g. --size-km 4", ctx, param)
    return value


def _years_handler(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    first, sep, last = value.partition("-")
    try:
        years = (int(first), int(last if sep else first))
    except ValueError:
        raise click.BadParameter(
            f"must be FIRST-LAST like 2014-2020, got {value!r}", ctx, param
        ) from None
    if not 1984 <= years[0] <= years[1] <= 2100:
        raise click.BadParameter(
            f"must be an increasing range from 1984 on (Landsat 5), got {value!r}", ctx, param
        )
    return years


def _stages_available() -> tuple[list[str], str | None]:
    """Pipeline stages whose module exists with a SPEC, up to the first one that does not."""
    import importlib

    from uhi.workspace import STAGES

    ready: list[str] = []
    for name in STAGES:
        try:
            module = importlib.import_module(f"uhi.stages.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"uhi.stages.{name}":
                raise
            return ready, name
        if not hasattr(module, "SPEC"):
            return ready, name
        ready.append(name)
    return ready, None


# what `uhi demo` writes into DIR (the workspace/ folder is uhi run's, not the demo's)
_DEMO_FILES = ("config.yaml", "truth.json", "truth_cells.parquet", "data")


@click.command("demo")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), metavar="DIR")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of every random draw.")
@click.option(
    "--size-km",
    type=float,
    default=4.0,
    show_default=True,
    callback=_size_handler,
    help="Side of the square city, km (30 gives the benchmark city).",
)
@click.option(
    "--years",
    default="2014-2020",
    show_default=True,
    callback=_years_handler,
    metavar="FIRST-LAST",
    help="Summers to simulate.",
)
@click.option(
    "--scenes-per-year",
    type=click.IntRange(1, 8),
    default=3,
    show_default=True,
    help="Usable scenes per summer (plus 2 fully cloudy and 1 L2SR extra).",
)
@click.option(
    "--sensors",
    type=click.Choice(["landsat-8", "all"]),
    default="landsat-8",
    show_default=True,
    help="landsat-8: the default demo. all: Landsat 5 TM (to 2011), 7 ETM+ (1999-2021, "
    "scan-line gaps after 2003-05-31) and 8 in the summers each imaged; needed for --years "
    "before 2013, e.g. --sensors all --years 1990-2020.",
)
@click.option("--run", "run_pipeline", is_flag=True, help="Then run every available stage on it.")
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite the config.yaml, truth and data/ of a demo already in DIR (the workspace is kept).",
)
def demo(
    directory: Path,
    seed: int,
    size_km: float,
    years: tuple[int, int],
    scenes_per_year: int,
    sensors: str,
    run_pipeline: bool,
    force: bool,
) -> None:
    """Write a deterministic synthetic city near Calgary into DIR, as real Landsat C2 L2 files.

    DIR gets data/ (scenes, STAC catalog, buildings, zones, AOI), config.yaml, truth.json and
    truth_cells.parquet: the planted values every stage's output can be checked against.
    """
    from uhi.demo import DemoSpec, write_demo
    from uhi.demo.sensors import SENSOR_CHOICES

    if years[0] < 2013 and sensors == "landsat-8":
        raise click.BadParameter(
            f"Landsat 8 images from 2013 on, got {years[0]}-{years[1]}: add --sensors all for "
            "earlier summers (Landsat 5 and 7), or start in 2013",
            param_hint="'--years'",
        )
    present = [name for name in _DEMO_FILES if (directory / name).exists()]
    if present and not force:
        raise click.UsageError(
            f"{directory} already holds {', '.join(present)}: pass --force to overwrite them "
            "(your edits to config.yaml are lost), or choose another DIR"
        )
    spec = DemoSpec(
        seed=seed,
        size_km=size_km,
        first_year=years[0],
        last_year=years[1],
        scenes_per_year=scenes_per_year,
        sensors=SENSOR_CHOICES[sensors],
    )
    result = write_demo(directory, spec)
    click.echo(
        f"demo city: {result.scenes} scenes, {result.aoi_cells} cells in the AOI, in {result.root}"
    )
    click.echo(f"config: {result.config}")
    click.echo(f"truth: {result.truth}")
    if not run_pipeline:
        click.echo(f"next: uhi run {result.config}")
        return

    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    ready, missing = _stages_available()
    if missing is not None:
        click.echo(
            f"stage '{missing}' is not available yet (uhi.stages.{missing} has no SPEC); "
            f"running {', '.join(ready) or 'no stage'} and stopping there",
            err=True,
        )
    if not ready:
        return
    cfg = build_run_config(result.config)
    outcomes = run_stages(cfg, ready)
    print_outcomes(outcomes, cfg.resolved_workdir())
