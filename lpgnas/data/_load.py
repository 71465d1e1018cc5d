"""``load_dataset``: the dataset registry, file lookup (data root, then cache, then download)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import types
from typing import NamedTuple

from lpgnas.data._download import SOURCES, TU_ARCHIVES, cache_dir, fetch_sources, resolve_data_root
from lpgnas.data._graph import Graph, GraphDataset
from lpgnas.data._npz import load_npz_graph
from lpgnas.data._planetoid import load_planetoid, planetoid_files
from lpgnas.data._synthetic import SYNTHETIC_PREFIX, parse_synthetic_spec, synthetic_graph
from lpgnas.data._tu import (DEFAULT_DEGREE_CAP, DEGREE_ENCODINGS, find_tu_prefix, load_folds, load_gin_text,
                             load_tu_files)
from lpgnas.errors import ConfigError, DataError

__all__ = ["DATASETS", "load_dataset"]

TU_FORMATS = ("auto", "gin", "tu")


class _Spec(NamedTuple):
    kind: str  # "planetoid" | "npz" | "tu"
    description: str
    file: str = ""  # npz file name
    tu_name: str = ""  # TU archive / file prefix

    @property
    def gin_name(self) -> str:
        return self.tu_name.upper().replace("-", "").replace("_MR", "")


_NPZ_FILES = {"amazon-photo": ("amazon_electronics_photo.npz", "Amazon Photo co-purchase graph"),
              "amazon-computers": ("amazon_electronics_computers.npz", "Amazon Computers co-purchase graph"),
              "coauthor-cs": ("ms_academic_cs.npz", "Coauthor CS co-authorship graph"),
              "coauthor-physics": ("ms_academic_phy.npz", "Coauthor Physics co-authorship graph")}
_TU_DESC = {"mutag": "MUTAG mutagenic compounds", "proteins": "PROTEINS enzymes vs non-enzymes",
            "reddit-binary": "REDDIT-BINARY discussion threads", "reddit-multi-5k":
            "REDDIT-MULTI-5K discussion threads", "nci1": "NCI1 anti-cancer screens",
            "imdb-binary": "IMDB-BINARY movie ego networks", "imdb-multi": "IMDB-MULTI movie ego networks",
            "collab": "COLLAB scientific collaborations", "ptc": "PTC (MR) carcinogenicity",
            "enzymes": "ENZYMES enzyme classes", "dd": "D&D protein structures"}

_SPECS: dict[str, _Spec] = {
    "cora": _Spec("planetoid", "Planetoid Cora citations (node classification; ind.cora.*)"),
    "citeseer": _Spec("planetoid", "Planetoid CiteSeer citations (node classification; ind.citeseer.*)"),
    "pubmed": _Spec("planetoid", "Planetoid PubMed citations (node classification; ind.pubmed.*)"),
    **{k: _Spec("npz", f"{d} (node classification; gnn-benchmark {f})", file=f)
       for k, (f, d) in _NPZ_FILES.items()},
    **{k: _Spec("tu", f"{_TU_DESC[k]} (graph classification; GIN text or TU files)", tu_name=tu)
       for k, tu in TU_ARCHIVES.items()},
}

#: name -> short description and file format; ``synthetic:<k=v,...>`` is accepted besides.
DATASETS = types.MappingProxyType(
    {**{k: s.description for k, s in _SPECS.items()},
     "synthetic:<k=v,...>": "degree-corrected planted partition with power-law degrees "
                            "(node classification; generated, see synthetic_graph)"})


def _expected_files(name: str, spec: _Spec) -> tuple[str, ...]:
    if spec.kind == "planetoid":
        return planetoid_files(name)
    if spec.kind == "npz":
        return (spec.file,)
    return ()


def _complete(name: str, spec: _Spec, d: pathlib.Path, tu_format: str) -> bool:
    if spec.kind == "tu":
        gin = (d / f"{spec.gin_name}.txt").is_file()
        tu = find_tu_prefix(d / "TU", spec.tu_name) is not None
        return {"auto": gin or tu, "gin": gin, "tu": tu}[tu_format]
    return all((d / f).is_file() for f in _expected_files(name, spec))


def _locate(name: str, spec: _Spec, root: pathlib.Path, download: bool, tu_format: str) -> pathlib.Path:
    cache = cache_dir()
    places = [root / name] + ([cache / name] if cache.resolve() != root.resolve() else [])
    for d in places:
        if _complete(name, spec, d, tu_format):
            return d
    # a partial local copy is an error, not a reason to download silently
    local = root / name
    present = [f for f in _expected_files(name, spec) if (local / f).is_file()]
    if present and local != cache / name:
        missing = next(f for f in _expected_files(name, spec) if not (local / f).is_file())
        raise DataError(local / missing, "missing file")
    if spec.kind == "tu" and tu_format == "gin":
        raise DataError(local / f"{spec.gin_name}.txt",
                        "missing file (GIN text is not downloadable; use tu_format='tu' or 'auto' "
                        "to read or download the original TU files)")
    if not download:
        where = " or ".join(str(p) for p in places)
        raise DataError(local, f"dataset {name!r} not found (looked in {where}); place the files "
                               "there or call with download=True")
    target = cache / name
    fetch_sources(target, SOURCES[name])
    if not _complete(name, spec, target, tu_format):  # pragma: no cover - defensive
        raise DataError(target, f"download of {name!r} did not produce the expected files")
    return target


def load_dataset(name: str, root: str | os.PathLike | None = None, *, download: bool = True,
                 tu_format: str = "auto", degree_cap: int = DEFAULT_DEGREE_CAP,
                 degree_encoding: str = "onehot") -> Graph | GraphDataset:
    """Load dataset ``name`` (see :data:`DATASETS`) from ``<root>/<name>/``.

    ``root`` defaults to :func:`resolve_data_root` (``$LPGNAS_DATA``, else the per-user cache).
    Missing datasets are looked up in the per-user cache and, with ``download``, fetched there
    (checksummed). ``tu_format`` picks the TU reader: ``"gin"`` (GIN text), ``"tu"`` (original
    TU files) or ``"auto"`` (GIN text when present). Sets without node labels get degree features:
    ``degree_encoding="onehot"``, the one-hot of the degree clipped at ``degree_cap``, or
    ``"normalized"``, one column of the degree standardised over the set (PyTorch Geometric's choice
    for sets with hubs of degree 1000 or more, such as REDDIT-BINARY). ``"synthetic:k=v,..."`` generates a graph instead
    (see :func:`synthetic_graph`).

    Node-classification sets give a :class:`Graph` (Planetoid with its public split, others with
    ``split=None``); graph-classification sets a :class:`GraphDataset` (with shipped
    ``10fold_idx`` folds when present).
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("dataset", f"expected a dataset name, got {name!r}")
    if name.strip().lower().startswith(SYNTHETIC_PREFIX):
        spec_str = name.strip()
        return synthetic_graph(**parse_synthetic_spec(spec_str[len(SYNTHETIC_PREFIX):]), name=spec_str)
    key = name.strip().lower()
    spec = _SPECS.get(key)
    if spec is None:
        raise ConfigError("dataset", f"unknown dataset {name!r}; known: {', '.join(_SPECS)}, "
                                     "synthetic:<k=v,...>")
    if tu_format not in TU_FORMATS:
        raise ConfigError("tu_format", f"must be one of {', '.join(TU_FORMATS)}, got {tu_format!r}")
    if int(degree_cap) < 1:
        raise ConfigError("degree_cap", f"must be >= 1, got {degree_cap}")
    if degree_encoding not in DEGREE_ENCODINGS:
        raise ConfigError("degree_encoding", f"must be one of {', '.join(DEGREE_ENCODINGS)}, got {degree_encoding!r}")
    d = _locate(key, spec, resolve_data_root(root), download, tu_format)
    if spec.kind == "planetoid":
        return load_planetoid(d, key)
    if spec.kind == "npz":
        return load_npz_graph(d / spec.file, key)
    gin = d / f"{spec.gin_name}.txt"
    if tu_format == "gin" or (tu_format == "auto" and gin.is_file()):
        ds = load_gin_text(gin, name=key, degree_cap=degree_cap, degree_encoding=degree_encoding)
    else:
        ds = load_tu_files(d / "TU", spec.tu_name, name=key, degree_cap=degree_cap,
                           degree_encoding=degree_encoding)
    folds = load_folds(d / "10fold_idx", len(ds))
    return ds if folds is None else dataclasses.replace(ds, folds=folds)

