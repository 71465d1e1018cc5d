"""Download cache: data-root resolution, atomic checksummed downloads, TU archives. No network:
sources are file:// URLs on temporary files or a monkeypatched fetch function."""

import hashlib
import os
import pathlib
import urllib.error
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from lpgnas.data import load_dataset, resolve_data_root
from lpgnas.data import _download
from lpgnas.data._download import SHA256, SOURCES, Source, download_file, sha256_of
from lpgnas.errors import DataError


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Point the cache into tmp_path and fail loudly if anything would reach the network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real = _download.urllib_fetch

    def guarded(url, out):
        assert url.startswith("file:"), f"test tried to reach the network: {url}"
        real(url, out)

    monkeypatch.setattr(_download, "urllib_fetch", guarded)


def _file_url(p: pathlib.Path) -> str:
    return p.resolve().as_uri()


def _leftovers(d: pathlib.Path):
    return [p.name for p in d.rglob("*") if p.name.endswith(".part")]


def test_resolve_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LPGNAS_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("LPGNAS_DATA")
    assert resolve_data_root() == tmp_path / "xdg" / "lpgnas"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_root() == tmp_path / "home" / ".cache" / "lpgnas"


def test_download_file_url_with_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"graph bytes" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "d" / "file.bin"
    download_file(_file_url(src), dest, digest)
    assert dest.read_bytes() == src.read_bytes()
    assert not _leftovers(tmp_path / "cache")


def test_checksum_mismatch_discards_download(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"tampered")
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(DataError, match="sha256 mismatch") as e:
        download_file(_file_url(src), dest, "0" * 64)
    assert e.value.path == str(dest)
    assert not dest.exists() and not _leftovers(tmp_path / "cache")


def test_fetch_failure_names_url(tmp_path):
    def broken(url, out):
        out.write(b"partial")
        raise urllib.error.URLError("no route to host")

    dest = tmp_path / "c" / "f.bin"
    with pytest.raises(DataError, match="download failed: no route to host") as e:
        download_file("https://example.invalid/f.bin", dest, None, fetch=broken)
    assert e.value.path == "https://example.invalid/f.bin"
    assert not dest.exists() and not _leftovers(tmp_path / "c")


def test_monkeypatched_fetch_and_unknown_checksum(tmp_path):
    calls = []

    def fake(url, out):
        calls.append(url)
        out.write(b"payload")

    dest = download_file("https://example.invalid/x", tmp_path / "x", None, fetch=fake)
    assert dest.read_bytes() == b"payload" and calls == ["https://example.invalid/x"]


def test_missing_dataset_without_download_names_path(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("cora", root, download=False)
    assert e.value.path == str(root / "cora")
    assert "not found" in str(e.value) and "download=True" in str(e.value)


def test_partial_local_copy_is_an_error_not_a_download(tmp_path):
    d = tmp_path / "root" / "cora"
    d.mkdir(parents=True)
    (d / "ind.cora.x").write_bytes(b"")
    with pytest.raises(DataError, match="ind.cora.y: missing file"):
        load_dataset("cora", tmp_path / "root", download=True)


def _tiny_npz(path):
    adj = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], np.float32))
    attr = sp.csr_matrix(np.eye(3, dtype=np.float32))
    np.savez(path, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr,
             adj_shape=np.array(adj.shape), attr_data=attr.data, attr_indices=attr.indices,
             attr_indptr=attr.indptr, attr_shape=np.array(attr.shape), labels=np.array([0, 1, 0]))
    return path


def test_load_dataset_downloads_into_cache_once(monkeypatch, tmp_path):
    src = _tiny_npz(tmp_path / "published.npz")
    monkeypatch.setitem(SOURCES, "amazon-photo", (
        Source(_file_url(src), "amazon_electronics_photo.npz", sha256_of(src)),))
    calls = []
    real = _download.urllib_fetch
    monkeypatch.setattr(_download, "urllib_fetch", lambda u, o: (calls.append(u), real(u, o)))
    root = tmp_path / "readonly-root"
    root.mkdir()
    g = load_dataset("amazon-photo", root)
    assert (g.num_nodes, g.num_edges) == (3, 4) and len(calls) == 1
    cached = tmp_path / "xdg" / "lpgnas" / "amazon-photo" / "amazon_electronics_photo.npz"
    assert cached.is_file() and not any(root.iterdir())  # nothing written into the data root
    load_dataset("amazon-photo", root)
    assert len(calls) == 1  # second load reads the cache


def test_load_dataset_download_checksum_mismatch(monkeypatch, tmp_path):
    src = _tiny_npz(tmp_path / "published.npz")
    monkeypatch.setitem(SOURCES, "amazon-photo", (
        Source(_file_url(src), "amazon_electronics_photo.npz", "f" * 64),))
    with pytest.raises(DataError, match="sha256 mismatch"):
        load_dataset("amazon-photo", tmp_path / "root")
    assert not (tmp_path / "xdg" / "lpgnas" / "amazon-photo" / "amazon_electronics_photo.npz").exists()


def _tu_zip(path, *, prefix="MUTAG"):
    files = {
        f"{prefix}_A.txt": "1, 2\n2, 1\n3, 4\n4, 3\n",
        f"{prefix}_graph_indicator.txt": "1\n1\n2\n2\n2\n",
        f"{prefix}_graph_labels.txt": "-1\n1\n",
        f"{prefix}_node_labels.txt": "0\n1\n1\n0\n2\n",
        "README.txt": "toy\n",
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(f"{prefix}/{name}", text)
        z.writestr("../escape.txt", "must not leave the cache folder")
        z.writestr(f"{prefix}/notes.bin", "ignored")
    return path


def test_tu_archive_download_and_unpack(monkeypatch, tmp_path):
    archive = _tu_zip(tmp_path / "MUTAG.zip")
    monkeypatch.setitem(SOURCES, "mutag", (Source(_file_url(archive), "TU", None, "tu-zip"),))
    ds = load_dataset("mutag", tmp_path / "root")
    assert len(ds) == 2 and ds.labels.tolist() == [0, 1]
    np.testing.assert_array_equal(ds.n_node, [2, 3])
    tu = tmp_path / "xdg" / "lpgnas" / "mutag" / "TU"
    assert sorted(p.name for p in tu.iterdir()) == sorted(
        ["MUTAG_A.txt", "MUTAG_graph_indicator.txt", "MUTAG_graph_labels.txt",
         "MUTAG_node_labels.txt", "README.txt", "escape.txt"])
    assert not (tmp_path / "xdg" / "lpgnas" / "escape.txt").exists()
    assert not list((tu.parent).glob("*.zip")) and not _leftovers(tu.parent)


def test_bad_tu_archive(monkeypatch, tmp_path):
    bad = tmp_path / "MUTAG.zip"
    bad.write_bytes(b"not a zip at all")
    monkeypatch.setitem(SOURCES, "mutag", (Source(_file_url(bad), "TU", None, "tu-zip"),))
    with pytest.raises(DataError, match="not a valid zip"):
        load_dataset("mutag", tmp_path / "root")
    assert not (tmp_path / "xdg" / "lpgnas" / "mutag" / "TU").exists()


def test_source_table():
    assert SOURCES["cora"][0].url.startswith("https://raw.githubusercontent.com/kimiyoung/planetoid/")
    assert SOURCES["coauthor-cs"][0].url.endswith("/data/npz/ms_academic_cs.npz")
    assert SOURCES["reddit-binary"][0].url == "https://www.chrsmrrs.com/graphkerneldatasets/REDDIT-BINARY.zip"
    assert all(len(s.sha256) == 64 for src in SOURCES.values() for s in src if s.sha256)
    assert sum(s.sha256 is not None for s in SOURCES["citeseer"]) == 8


def test_checksum_table_matches_shared_files(data_root):
    checked = 0
    for rel, digest in SHA256.items():
        p = pathlib.Path(data_root) / rel
        if p.is_file():
            assert sha256_of(p) == digest, rel
            checked += 1
    assert checked == len(SHA256) or not os.path.isdir(os.path.join(data_root, "cora"))
