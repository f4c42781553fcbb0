"""Load BEIR-format test collections from a folder, or download the official BEIR zips.

A BEIR folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``. A dataset name
(``"scifact"``, or ``"cqadupstack/android"`` for a part of a multi-part zip) is fetched from
``{base_url}/{name}.zip`` - by default the official UKP server, overridable with ``base_url=`` or the
``RETRIEVEKIT_BEIR_URL`` environment variable - checked against the md5 sum that BEIR publishes, and
unpacked into ``{cache}/beir/{name}/``, where ``{cache}`` is ``$RETRIEVEKIT_CACHE`` or
``~/.cache/retrievekit``. The download goes to a temporary file and the extraction to a temporary
folder; each is renamed into place only once complete and verified, so an interrupted or corrupt
download never leaves anything that looks cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from retrievekit.core.document import Document
from retrievekit.core.errors import CollectionError, InputFormatError, RetrievekitError
from retrievekit.evaluation.metrics import Qrels
from retrievekit.evaluation.trec import read_qrels

logger = logging.getLogger(__name__)

DEFAULT_BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"

# md5 of each public zip, as published in the BEIR README's dataset table (beir-cellar/beir).
BEIR_MD5: dict[str, str] = {
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
}

_CHUNK = 1 << 20


class DatasetError(RetrievekitError):
    """A dataset could not be found, downloaded, verified or unpacked."""


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR collection for one split: queries limited to those judged in that split's qrels."""

    path: Path
    split: str
    queries: dict[str, str]
    qrels: Qrels
    corpus_path: Path = field(repr=False)

    def iter_corpus(self) -> Iterator[Document]:
        """Stream the corpus as ``Document`` objects (``_id`` becomes ``id``)."""
        try:
            from retrievekit.ingest import read_documents
        except ImportError:
            return _read_beir_jsonl(self.corpus_path)
        return read_documents(self.corpus_path)


def _read_beir_jsonl(path: Path) -> Iterator[Document]:
    """Minimal fallback corpus reader, used only when ``retrievekit.ingest`` is not available."""
    for _, obj in _jsonl(path):
        yield Document(id=str(obj["_id"]), text=obj.get("text") or "", title=obj.get("title") or "",
                       metadata=obj.get("metadata") or {})


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"invalid JSON: {exc.msg}", path, lineno) from None
            if not isinstance(obj, dict) or "_id" not in obj:
                raise InputFormatError("expected a JSON object with an '_id' field", path, lineno)
            yield lineno, obj


# ----------------------------------------------------------------------------- loading


def load_beir(name_or_path: str | os.PathLike[str], split: str = "test",
              cache_dir: str | Path | None = None, *, base_url: str | None = None,
              corpus: str = "corpus.jsonl") -> BeirDataset:
    """Load a BEIR dataset from a folder, or by name (downloaded once, then read from the cache).

    An existing folder wins over a dataset name. ``cache_dir`` is the folder that holds the unpacked
    datasets (default ``$RETRIEVEKIT_CACHE/beir`` or ``~/.cache/retrievekit/beir``). ``corpus`` names another
    corpus file of the folder (e.g. xquad-r's ``paragraphs.jsonl`` with split ``test_paragraphs``).
    """
    given = Path(name_or_path)
    if given.is_dir():
        folder = given
    else:
        name = str(name_or_path)
        looks_like_path = "/" in name or os.sep in name
        if looks_like_path and name.split("/")[0] not in BEIR_MD5:
            raise DatasetError(f"no such dataset folder: {given}")
        folder = _fetch(name, Path(cache_dir) if cache_dir else _default_cache(), base_url)
    return _load_folder(folder, split, corpus)


def _default_cache() -> Path:
    root = os.environ.get("RETRIEVEKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "retrievekit") / "beir"


def _load_folder(folder: Path, split: str, corpus_name: str = "corpus.jsonl") -> BeirDataset:
    if Path(corpus_name).name != corpus_name:
        raise DatasetError(f"corpus must be a file name inside the dataset folder, got {corpus_name!r}")
    corpus = folder / corpus_name
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not corpus.is_file() and any(p.is_dir() and (p / "corpus.jsonl").is_file() for p in folder.iterdir()):
        parts = sorted(p.name for p in folder.iterdir() if (p / "corpus.jsonl").is_file())
        raise DatasetError(f"{folder} holds several datasets; load one of its parts, e.g. "
                           f"{folder / parts[0]} (parts: {', '.join(parts)})")
    for needed in (corpus, queries_path):
        if not needed.is_file():
            raise CollectionError(f"{folder} is not a BEIR dataset folder: {needed.name} is missing")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DatasetError(f"{folder} has no split {split!r}; available splits: {splits or 'none'}")

    qrels = read_qrels(qrels_path, format="beir")
    queries = {str(obj["_id"]): str(obj.get("text", "")) for _, obj in _jsonl(queries_path)
               if str(obj["_id"]) in qrels}
    missing = len(qrels) - len(queries)
    if missing:
        logger.warning("%s: %d judged queries of split %r have no text in queries.jsonl",
                       folder, missing, split)
    return BeirDataset(path=folder, split=split, queries=queries, qrels=qrels, corpus_path=corpus)


# ----------------------------------------------------------------------------- download


def _fetch(name: str, cache_dir: Path, base_url: str | None) -> Path:
    zip_name, _, part = name.partition("/")
    if zip_name not in BEIR_MD5:
        raise DatasetError(f"unknown BEIR dataset {name!r} (and no such folder); "
                           f"known names: {', '.join(sorted(BEIR_MD5))}")
    target = cache_dir / zip_name
    if target.is_dir():
        logger.debug("using cached %s", target)
    else:
        base = (base_url or os.environ.get("RETRIEVEKIT_BEIR_URL") or DEFAULT_BEIR_URL).rstrip("/")
        cache_dir.mkdir(parents=True, exist_ok=True)
        archive = _download(f"{base}/{zip_name}.zip", cache_dir, BEIR_MD5[zip_name])
        try:
            _extract(archive, target)
        finally:
            archive.unlink(missing_ok=True)
    folder = target / part if part else target
    if not folder.is_dir():
        raise DatasetError(f"{zip_name} has no part {part!r}; look in {target}")
    return folder


def _download(url: str, cache_dir: Path, md5: str) -> Path:
    """Download ``url`` into a temporary file in ``cache_dir``; return it only if its md5 matches."""
    logger.info("downloading %s", url)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".zip", dir=cache_dir)
    tmp = Path(tmp_name)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DatasetError(f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}; "
                               "nothing was cached")
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"could not download {url}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _extract(archive: Path, target: Path) -> None:
    """Unpack into a temporary sibling of ``target``, refusing members that would land outside it."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise DatasetError(f"{archive.name}: unsafe path {member.filename!r} in the zip")
                if (member.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DatasetError(f"{archive.name}: symbolic link {member.filename!r} in the zip")
            zf.extractall(staging)
        # The BEIR zips hold one top-level folder named after the dataset; accept a flat zip too.
        entries = list(staging.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        os.replace(root, target)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive.name} is not a valid zip file: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
