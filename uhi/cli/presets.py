"""`uhi presets`: the STAC search presets and what each needs."""

from __future__ import annotations

import click

from uhi.cli.options import json_opt

__all__ = ["presets"]


@click.command("presets")
@json_opt
def presets(as_json: bool) -> None:
    """List the STAC presets (search.preset): API, account needed, cost, where pixels come from.

    Choose one with `--set search.preset=NAME` or `search: {preset: NAME}` in the config.
    """
    from uhi.config import SearchConfig
    from uhi.search.stac import PRESETS

    default = SearchConfig.model_fields["preset"].default
    rows = [
        {
            "name": name,
            "default": name == default,
            "url": p.url,
            "collections": list(p.collections),
            "account": p.account,
            "cost": p.cost,
            "pixels": p.pixels,
        }
        for name, p in PRESETS.items()
    ]
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}{' (default)' if row['default'] else ''}")
        click.echo(f"  api:      {row['url']} ({', '.join(row['collections'])})")
        click.echo(f"  account:  {row['account']}")
        click.echo(f"  cost:     {row['cost']}")
        click.echo(f"  pixels:   {row['pixels']}")
