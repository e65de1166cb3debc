"""SageMaker Processing layout: resourceconfig, deterministic shards, merge checks (fake fetch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from uhi.config import Config
from uhi.errors import ConfigError, InputError
from uhi.processing import (
    Hosts,
    ProcessingLayout,
    load_processing_config,
    merge_shards,
    read_hosts,
    run_shard,
    shard_items,
)
from uhi.workspace import Workspace

IDS = [f"LC08_L2SP_042025_2020{m:02d}{d:02d}_02_T1" for m in (6, 7, 8) for d in (1, 9, 17, 25)]


def _lister(config: Config) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=i) for i in reversed(IDS)]  # order must not matter


def _fetcher(config: Config, ws: Workspace, items: Sequence[Any]) -> dict[str, Any]:
    for item in items:
        ws.write_text(ws.scene_asset(item.id, "lwir11"), f"dn of {item.id}\n")
    return {"fetched": len(items)}


def _host_root(base: Path, current: str, hosts: list[str]) -> ProcessingLayout:
    layout = ProcessingLayout(base / current)
    layout.config_dir.mkdir(parents=True)
    (layout.config_dir / "job.yaml").write_text("city:\n  name: testville\n  bbox: [8.5, 47.3, 8.6, 47.4]\n")
    layout.resource_config.parent.mkdir(parents=True)
    layout.resource_config.write_text(json.dumps({"current_host": current, "hosts": hosts}))
    return layout


@pytest.mark.parametrize("n_hosts", [1, 2, 3, 5, 13])
def test_shards_are_disjoint_cover_everything_and_balance(n_hosts: int) -> None:
    hosts = tuple(f"algo-{i + 1}" for i in range(n_hosts))
    shares = [shard_items(list(reversed(IDS)), Hosts(h, hosts)) for h in hosts]
    flat = [i for s in shares for i in s]
    assert sorted(flat) == sorted(IDS) and len(flat) == len(set(flat))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1


def test_read_hosts_defaults_and_rejects_bad_files(tmp_path: Path) -> None:
    assert read_hosts(tmp_path / "none.json") == Hosts("algo-1", ("algo-1",))
    bad = tmp_path / "rc.json"
    bad.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1", "algo-2"]}))
    with pytest.raises(InputError, match="current_host 'algo-9' is not among hosts"):
        read_hosts(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a SageMaker resource config"):
        read_hosts(bad)


def test_config_must_be_exactly_one_yaml(tmp_path: Path) -> None:
    layout = ProcessingLayout(tmp_path)
    with pytest.raises(ConfigError, match="no config folder"):
        load_processing_config(layout, workdir=tmp_path / "out")
    layout.config_dir.mkdir(parents=True)
    (layout.config_dir / "a.yaml").write_text("{}\n")
    (layout.config_dir / "b.yml").write_text("{}\n")
    with pytest.raises(ConfigError, match="exactly one YAML config .* found 2"):
        load_processing_config(layout, workdir=tmp_path / "out")


def test_root_comes_from_environment(tmp_path: Path) -> None:
    assert ProcessingLayout.from_environment({"UHI_PROCESSING_ROOT": str(tmp_path)}).root == tmp_path
    assert ProcessingLayout.from_environment({}).root == Path("/opt/ml")


def _make_shards(base: Path, hosts: list[str]) -> list[Path]:
    dirs = []
    for h in hosts:
        layout = _host_root(base, h, hosts)
        config = load_processing_config(layout, workdir=layout.shard_output(h))
        run_shard(config, read_hosts(layout.resource_config), list_scenes=_lister, fetch_share=_fetcher)
        dirs.append(layout.shard_output(h))
    return dirs


def test_three_hosts_merge_to_the_one_machine_files(tmp_path: Path) -> None:
    hosts = ["algo-1", "algo-2", "algo-3"]
    dirs = _make_shards(tmp_path, hosts)
    merge_layout = _host_root(tmp_path, "merge", ["merge"])
    config = load_processing_config(merge_layout, workdir=merge_layout.output)
    result = merge_shards(config, dirs)
    assert result == {"shards": 3, "scenes": len(IDS), "files_copied": len(IDS), "files_kept": 0}
    one = Workspace(tmp_path / "one")
    _fetcher(config, one, [SimpleNamespace(id=i) for i in IDS])
    merged = Workspace(merge_layout.output)
    rel = lambda ws: {ws.relative(p): p.read_bytes() for p in ws.files_under(ws.path("fetch"))}  # noqa: E731
    assert rel(merged) == rel(one)
    # a re-run of the merge (e.g. after a kill) copies nothing again
    assert merge_shards(config, dirs)["files_kept"] == len(IDS)


def test_merge_refuses_missing_unfinished_or_corrupt_shards(tmp_path: Path) -> None:
    hosts = ["algo-1", "algo-2"]
    dirs = _make_shards(tmp_path, hosts)
    merge_layout = _host_root(tmp_path, "merge", ["merge"])
    config = load_processing_config(merge_layout, workdir=merge_layout.output)
    with pytest.raises(InputError, match="shards missing for host.* algo-2"):
        merge_shards(config, dirs[:1])
    record = json.loads((dirs[1] / "shard.json").read_text())
    (dirs[1] / "shard.json").write_text(json.dumps({**record, "scene_ids": record["scene_ids"][1:]}))
    with pytest.raises(InputError, match="scene lists disagree"):
        merge_shards(config, dirs)
    (dirs[1] / "shard.json").write_text(json.dumps(record))
    victim = next(dirs[1].rglob("*.tif"))
    victim.write_text("tampered\n")
    with pytest.raises(InputError, match="algo-2: fetch/scenes/.* is missing or corrupt"):
        merge_shards(config, dirs)
    assert not (merge_layout.output / "fetch").exists()  # nothing copied from the good shard
    (dirs[1] / "shard.json").unlink()
    with pytest.raises(InputError, match="did not finish"):
        merge_shards(config, dirs)


def test_merge_refuses_shards_of_another_config(tmp_path: Path) -> None:
    dirs = _make_shards(tmp_path, ["algo-1"])
    merge_layout = _host_root(tmp_path, "merge", ["merge"])
    config = load_processing_config(merge_layout, workdir=merge_layout.output, set_values=["time.months=[7]"])
    with pytest.raises(InputError, match="different city/time/search/fetch config"):
        merge_shards(config, dirs)


@pytest.mark.parametrize(
    "rel",
    [
        "fetch/scenes/../../report/report.html",  # the probe: passes a prefix test
        "fetch/scenes/./X/lwir11.tif",
        "fetch/scenes/X/../../../manifest.json",
        "fetch/scenes/X/deeper/lwir11.tif",
        "/etc/passwd",
    ],
)
def test_merge_refuses_a_shard_listing_a_path_that_leaves_its_scenes(tmp_path: Path, rel: str) -> None:
    dirs = _make_shards(tmp_path, ["algo-1"])
    # the listed file exists where the path leads, with the right checksum: only the path is wrong
    target = (dirs[0] / rel).resolve() if not rel.startswith("/") else Path(rel)
    if not rel.startswith("/"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("<html>planted</html>")
    from uhi.workspace import sha256_file

    record = json.loads((dirs[0] / "shard.json").read_text())
    record["files"][rel] = sha256_file(target) if target.is_file() else "0" * 64
    (dirs[0] / "shard.json").write_text(json.dumps(record))
    merge_layout = _host_root(tmp_path, "merge", ["merge"])
    config = load_processing_config(merge_layout, workdir=merge_layout.output)
    with pytest.raises(InputError, match=r"lists a path outside its scenes: .*re-run that host"):
        merge_shards(config, dirs)
    assert not merge_layout.output.exists() or not any(merge_layout.output.rglob("*.html"))
