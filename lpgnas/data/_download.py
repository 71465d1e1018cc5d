"""Download cache: the data root, the per-user cache, the public sources and checksums.

Files are fetched with ``urllib`` into the per-user cache (never into the data root, which may be
read-only), each through a temporary file renamed into place once complete and verified against the
sha256 recorded here (``None``: no published checksum, accepted as is). TU archives are unpacked
into ``<cache>/<name>/TU/`` the same way (temporary folder + rename).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from lpgnas.errors import DataError

__all__ = ["Source", "SOURCES", "SHA256", "cache_dir", "resolve_data_root", "download_file",
           "fetch_sources", "sha256_of", "urllib_fetch"]

Fetch = Callable[[str, BinaryIO], None]

_PLANETOID_URL = "https://raw.githubusercontent.com/kimiyoung/planetoid/master/data/"
_NPZ_URL = "https://raw.githubusercontent.com/shchur/gnn-benchmark/master/data/npz/"
_TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets/"
_TIMEOUT_S = 60.0
_BLOCK = 1 << 20


def cache_dir() -> pathlib.Path:
    """The per-user cache: ``$XDG_CACHE_HOME/lpgnas``, else ``~/.cache/lpgnas``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (pathlib.Path(base) if base else pathlib.Path.home() / ".cache") / "lpgnas"


def resolve_data_root(root: str | os.PathLike | None = None) -> pathlib.Path:
    """The data root: ``root`` when given, else ``$LPGNAS_DATA``, else :func:`cache_dir`."""
    if root is not None and str(root) != "":
        return pathlib.Path(root).expanduser()
    env = os.environ.get("LPGNAS_DATA")
    if env:
        return pathlib.Path(env).expanduser()
    return cache_dir()


class Source(NamedTuple):
    """One published file: where to get it, where it lands below ``<dir>/<name>/``, its sha256.

    ``kind`` is ``"file"`` (stored as is) or ``"tu-zip"`` (a TU Dortmund archive unpacked into
    ``TU/``; ``path`` is then the folder).
    """

    url: str
    path: str
    sha256: str | None
    kind: str = "file"


# sha256 of the published files (from the benchmark data README); None where unknown.
SHA256: dict[str, str | None] = {
    "cora/ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "cora/ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "cora/ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "cora/ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "cora/ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "cora/ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "cora/ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "cora/ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    "citeseer/ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "citeseer/ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "citeseer/ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "citeseer/ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "citeseer/ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "citeseer/ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "citeseer/ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "citeseer/ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    "amazon-photo/amazon_electronics_photo.npz":
        "bdb1feb8e6ff42ee44024b04479145029c563fd42fc31bff80af20887ba0439a",
}

_PLANETOID = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
_NPZ = {"amazon-photo": "amazon_electronics_photo.npz",
        "amazon-computers": "amazon_electronics_computers.npz",
        "coauthor-cs": "ms_academic_cs.npz",
        "coauthor-physics": "ms_academic_phy.npz"}
# dataset name -> TU Dortmund archive name
TU_ARCHIVES = {"mutag": "MUTAG", "proteins": "PROTEINS", "reddit-binary": "REDDIT-BINARY",
               "reddit-multi-5k": "REDDIT-MULTI-5K", "nci1": "NCI1", "imdb-binary": "IMDB-BINARY",
               "imdb-multi": "IMDB-MULTI", "collab": "COLLAB", "ptc": "PTC_MR", "enzymes": "ENZYMES",
               "dd": "DD"}


def _sources() -> dict[str, tuple[Source, ...]]:
    out: dict[str, tuple[Source, ...]] = {}
    for name in ("cora", "citeseer", "pubmed"):
        out[name] = tuple(Source(_PLANETOID_URL + f"ind.{name}.{p}", f"ind.{name}.{p}",
                                 SHA256.get(f"{name}/ind.{name}.{p}"))
                          for p in _PLANETOID)
    for name, fname in _NPZ.items():
        out[name] = (Source(_NPZ_URL + fname, fname, SHA256.get(f"{name}/{fname}")),)
    for name, tu in TU_ARCHIVES.items():
        out[name] = (Source(_TU_URL + f"{tu}.zip", "TU", None, "tu-zip"),)
    return out


SOURCES: dict[str, tuple[Source, ...]] = _sources()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def urllib_fetch(url: str, out: BinaryIO) -> None:
    """Stream ``url`` (http, https or file) into the open binary file ``out``."""
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:  # noqa: S310 - fixed tables
        shutil.copyfileobj(resp, out, _BLOCK)


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None, *,
                  fetch: Fetch | None = None) -> pathlib.Path:
    """Download ``url`` to ``dest`` atomically (temporary file + rename), checking ``sha256``.

    Raises :class:`DataError` naming the URL when the download fails and naming ``dest`` when the
    checksum does not match (the partial file is removed).
    """
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                (fetch or urllib_fetch)(url, out)
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise DataError(url, f"download failed: {getattr(e, 'reason', None) or e}") from None
        if sha256 is not None:
            got = sha256_of(tmp)
            if got != sha256.lower():
                raise DataError(dest, f"sha256 mismatch for {url}: expected {sha256}, got {got}; "
                                      "the download was discarded")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


_SAFE_MEMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _unpack_tu(archive: pathlib.Path, dest: pathlib.Path, url: str) -> None:
    """Unpack the ``.txt`` members of a TU archive (flattened) into ``dest`` atomically."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".TU.", suffix=".part", dir=dest.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
                    if info.is_dir() or not base.endswith(".txt") or not _SAFE_MEMBER.match(base):
                        continue
                    with z.open(info) as src, open(tmp / base, "wb") as out:
                        shutil.copyfileobj(src, out, _BLOCK)
        except (zipfile.BadZipFile, EOFError) as e:
            raise DataError(url, f"downloaded archive is not a valid zip file ({e})") from None
        if not any(tmp.glob("*_A.txt")):
            raise DataError(url, "downloaded archive holds no *_A.txt (not a TU data set)")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def fetch_sources(directory: str | os.PathLike, sources: tuple[Source, ...], *,
                  fetch: Fetch | None = None) -> pathlib.Path:
    """Download every missing source into ``directory`` (the dataset's folder in the cache)."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for src in sources:
        target = d / src.path
        if src.kind == "file":
            if not target.is_file():
                download_file(src.url, target, src.sha256, fetch=fetch)
        elif src.kind == "tu-zip":
            if not (target.is_dir() and any(target.glob("*_A.txt"))):
                archive = d / (src.url.rsplit("/", 1)[-1] or "archive.zip")
                download_file(src.url, archive, src.sha256, fetch=fetch)
                try:
                    _unpack_tu(archive, target, src.url)
                finally:
                    archive.unlink(missing_ok=True)
        else:  # pragma: no cover - table error
            raise ValueError(f"unknown source kind {src.kind!r}")
    return d
