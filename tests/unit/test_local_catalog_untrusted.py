"""A local STAC catalog that is not one (a JSON string or list, a link loop, a huge file): exit 2, the file named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uhi.cli.main import main
from uhi.search.local import MAX_CATALOG_DEPTH, MAX_JSON_BYTES

ITEM = Path(__file__).parents[1] / "data" / "stac" / "stactools-examples" / "LC08_L2SP_047027_20201204_02_T1.json"


def _fetch(tmp_path: Path, search_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "city: {name: cat, bbox: [-122.4, 47.5, -122.2, 47.7]}\n"
        "time: {start: 2020-01-01, end: 2020-12-31, months: [12]}\n"
        f"search: {{backend: local, path: '{search_path}'}}\n"
    )
    with pytest.raises(SystemExit) as done:
        main(["fetch", str(cfg), "--workdir", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(done.value.code or 0), err


def _catalog(folder: Path, links: list[dict[str, str]], name: str = "catalog.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"type": "Catalog", "stac_version": "1.0.0", "id": folder.name,
                                "description": "x", "links": links}))
    return path


@pytest.mark.parametrize("content, kind", [('"just a string"', "str"), ("[1, 2, 3]", "list"), ("42", "int")])
def test_catalog_file_that_is_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            content: str, kind: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    code, err = _fetch(tmp_path, path, capsys)
    assert code == 2
    assert f"{path} is a JSON {kind}, not a STAC catalog" in err


def test_item_file_that_is_a_list_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = tmp_path / "cat"
    bad = cat / "bad" / "bad.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[]")
    (cat / "good").mkdir()
    (cat / "good" / "good.json").write_text(ITEM.read_text())
    path = _catalog(cat, [{"rel": "item", "href": "./good/good.json"}, {"rel": "item", "href": "./bad/bad.json"}])
    code, err = _fetch(tmp_path, path, capsys)
    assert code == 2
    assert f"the item in {bad} is not a STAC item (got a JSON list)" in err


def test_catalog_link_loop_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cat"
    child = root / "sub" / "catalog.json"
    path = _catalog(root, [{"rel": "child", "href": "./sub/catalog.json"}])
    _catalog(root / "sub", [{"rel": "child", "href": "../catalog.json"}])
    code, err = _fetch(tmp_path, path, capsys)
    assert code == 2
    assert f"catalog link loop: {child} links back to {path}" in err


def test_catalog_nested_too_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "cat"
    top = _catalog(folder, [{"rel": "child", "href": "./d/catalog.json"}])
    for _ in range(MAX_CATALOG_DEPTH + 2):
        folder = folder / "d"
        _catalog(folder, [{"rel": "child", "href": "./d/catalog.json"}])
    code, err = _fetch(tmp_path, top, capsys)
    assert code == 2 and f"catalogs nested deeper than {MAX_CATALOG_DEPTH} levels" in err


def test_huge_catalog_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.json"
    with open(path, "wb") as fh:  # sparse: no disk used, and uhi must not read it
        fh.truncate(MAX_JSON_BYTES + 1)
    code, err = _fetch(tmp_path, path, capsys)
    assert code == 2
    assert f"{path} is larger than 64 MiB" in err


def test_remote_link_in_a_local_catalog_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _catalog(tmp_path / "cat", [{"rel": "item", "href": "http://user:s3cretPW@example.invalid/item.json"}])
    code, err = _fetch(tmp_path, path, capsys)
    assert code == 2
    assert "links to http://***@example.invalid/item.json" in err and "s3cretPW" not in err


def test_well_formed_catalogs_still_read(tmp_path: Path) -> None:
    """Positive control: an item reached twice (two parents) is read once, and a pre-1.0 catalog
    without "type" is still a catalog."""
    from uhi.search.local import items_from_catalog

    (tmp_path / "cat" / "items").mkdir(parents=True)
    (tmp_path / "cat" / "items" / "a.json").write_text(ITEM.read_text())
    _catalog(tmp_path / "cat" / "sub", [{"rel": "item", "href": "../items/a.json"}])
    root = _catalog(tmp_path / "cat", [{"rel": "child", "href": "./sub/catalog.json"},
                                       {"rel": "item", "href": "./items/a.json"}])
    data = json.loads(root.read_text())
    del data["type"]
    data["stac_version"] = "0.9.0"
    root.write_text(json.dumps(data))
    items = items_from_catalog(root)
    assert [i.id for i in items] == [json.loads(ITEM.read_text())["id"]]
    assert all(Path(a.href).is_absolute() or "://" in a.href for a in items[0].assets.values())
