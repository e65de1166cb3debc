"""`uhi processing` on the demo city: two simulated SageMaker hosts, then the merge job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_run_support import compare_workspaces, shared_clean_run, shared_demo, uhi

from uhi.config import read_yaml


def _job_root(root: Path, config: Path, current: str, hosts: list[str]) -> Path:
    """A simulated /opt/ml: the config as the 'config' input, SageMaker's resourceconfig.json."""
    data = read_yaml(config)  # relative paths made absolute: the data stays where it is
    data.pop("workdir", None)
    (root / "processing" / "input" / "config").mkdir(parents=True)
    (root / "processing" / "input" / "config" / "job.yaml").write_text(yaml.safe_dump(data))
    (root / "config").mkdir()
    (root / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": "eth0"})
    )
    return root


@pytest.mark.slow
def test_two_hosts_then_merge_equal_one_machine(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    demo = shared_demo(tmp_path_factory)
    one = shared_clean_run(tmp_path_factory)
    full = json.loads((one / "manifest.json").read_text())["stages"]["fetch"]["summary"]

    hosts = ["algo-1", "algo-2"]
    shares = []
    for host in hosts:
        root = _job_root(tmp_path / host, demo, host, hosts)
        r = uhi("processing", "--json", env={"UHI_PROCESSING_ROOT": str(root)})
        assert r.returncode == 0, r.stderr[-3000:]
        result = json.loads(r.stdout)
        assert result["mode"] == "shard" and result["host"] == host
        shares.append(set(result["scenes"]))
        assert not (root / "processing" / "output" / "manifest.json").exists()
    assert not shares[0] & shares[1] and all(shares)

    merge = _job_root(tmp_path / "merge", demo, "algo-1", ["algo-1"])
    for host in hosts:  # what SageMaker downloads from the shards' S3 prefix
        shutil.copytree(
            tmp_path / host / "processing" / "output" / "shards" / host,
            merge / "processing" / "input" / "shards" / host,
        )
    r = uhi("processing", "--merge", "--json", env={"UHI_PROCESSING_ROOT": str(merge)})
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result["mode"] == "merge" and result["merge"]["shards"] == 2
    fetch = result["stages"][0]
    assert fetch["summary"]["assets_fetched"] == 0  # every clip came from a shard
    assert fetch["summary"]["scenes"] == full["scenes"]
    compare_workspaces(one, merge / "processing" / "output")


@pytest.mark.slow
def test_one_instance_job_is_the_one_machine_run(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = _job_root(tmp_path / "single", shared_demo(tmp_path_factory), "algo-1", ["algo-1"])
    r = uhi("processing", "--json", env={"UHI_PROCESSING_ROOT": str(root)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["mode"] == "single"
    compare_workspaces(shared_clean_run(tmp_path_factory), root / "processing" / "output")


def test_processing_without_config_exits_2(tmp_path: Path) -> None:
    r = uhi("processing", env={"UHI_PROCESSING_ROOT": str(tmp_path)})
    assert r.returncode == 2
    assert "processing/input/config" in r.stderr and "Traceback" not in r.stderr
