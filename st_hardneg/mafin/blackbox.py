"""Black-box embeddings for Mafin: vectors of a model whose weights we do not have.

Three sources behind one small protocol (:class:`BlackBox`: ``name`` and ``embed(texts)``):

- :class:`CallableBlackBox`: any ``texts -> vectors`` function, e.g. the user's API client (which
  does its own retries); called in batches of ``batch_size`` texts;
- :class:`PrecomputedBlackBox`: vectors computed elsewhere, looked up by the SHA-256 of the text,
  from a ``datasets.Dataset``, a parquet file or a dict; a text it lacks raises
  :class:`MissingVectorError` (or goes to a ``fallback`` black box), never a silent zero vector;
- :class:`ModelBlackBox`: a frozen local ``SentenceTransformer`` (its weights are never trained).

:func:`load_black_box` opens a store or a model folder by its path.

:class:`VectorCache` wraps any of them so that each text is fetched once: vectors are kept in
memory and, with a folder, in append-only parquet shards keyed by the black box's name and the
text's hash, so an API is never asked twice for the same text, across runs.

Vectors are returned as float32, L2-normalised (Mafin concatenates them with a normalised
trainable embedding; unit vectors keep the two parts on one scale).

References:
    Zhang, Lan, Hayes, Barber, "Mafin: Enhancing Black-Box Embeddings with Model Augmented
    Fine-Tuning", arXiv 2402.12177.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)


class MissingVectorError(KeyError):
    """A text has no black-box vector and there is no way to fetch one."""

    def __str__(self) -> str:  # KeyError would print the repr of its message
        return str(self.args[0]) if self.args else ""


def text_hash(text: str) -> str:
    """The key of a text's vector: SHA-256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@runtime_checkable
class BlackBox(Protocol):
    """Anything with a ``name`` and ``embed(texts) -> float32 [len(texts), dim]``."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _checked(vectors: Any, texts: Sequence[str], source: str) -> np.ndarray:
    """``vectors`` as float32 unit rows, one per text; a clear error for a wrong shape or a non-finite value."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(texts):
        raise ValueError(f"{source}: expected {len(texts)} vectors (a 2-D array), got shape {array.shape}")
    bad = ~np.isfinite(array).all(axis=1) | (np.linalg.norm(array, axis=1) == 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: {int(bad.sum())} vector(s) are zero or not finite, e.g. for text "
                         f"{texts[i][:80]!r}")
    return array / np.linalg.norm(array, axis=1, keepdims=True)


class CallableBlackBox:
    """A black box behind a function ``texts -> vectors`` (an API client, usually).

    Args:
        fn (Callable[[list[str]], Any]): Returns one vector per text (array-like ``[n, dim]``).
            Retries, rate limits and credentials are the function's business.
        name (str): Names the black box in caches and model cards, e.g. ``"openai/text-embedding-3-small"``.
        batch_size (int): Texts per call.

    Example::

        from st_hardneg.mafin import CallableBlackBox
        box = CallableBlackBox(lambda texts: client.embed(texts), name="my-api-model", batch_size=128)
        vectors = box.embed(["what is hard-negative mining?"])
    """

    def __init__(self, fn: Callable[[list[str]], Any], name: str, batch_size: int = 64) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.fn, self.name, self.batch_size = fn, name, batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        parts = [_checked(self.fn(texts[i:i + self.batch_size]), texts[i:i + self.batch_size], self.name)
                 for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


class ModelBlackBox:
    """A frozen local ``SentenceTransformer`` as the black box (its weights are never trained).

    Args:
        model (SentenceTransformer | str): The model, or a name/path to load.
        name (str | None): Defaults to the name it was loaded by: a Hub id as given, a local folder as
            ``<folder name>@<weights hash>`` (never the machine path, which cards would publish); else
            a fingerprint of its weights.
        batch_size (int): Encoding batch size.
    """

    def __init__(self, model: Any, name: str | None = None, batch_size: int = 32) -> None:
        from ..embeddings import model_fingerprint

        if isinstance(model, (str, os.PathLike)):
            from sentence_transformers import SentenceTransformer

            from ..models import display_name

            given, model = str(model), SentenceTransformer(str(model))
            name = name or display_name(given, lambda: model_fingerprint(model))
        if not name:
            name = f"{type(model).__name__}@{model_fingerprint(model)[:16]}"
        self.model, self.batch_size, self.name = model, batch_size, name
        for p in model.parameters():
            p.requires_grad_(False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return _checked(vectors, texts, self.name)


class PrecomputedBlackBox:
    """Vectors computed elsewhere, looked up by the SHA-256 of the text.

    Args:
        vectors: A ``datasets.Dataset``, a parquet path, or a mapping ``text -> vector``. A dataset or
            file needs an ``embedding`` column and a ``text`` column (or ``text_sha256``, the key
            :func:`text_hash` gives).
        name (str): The black box whose vectors these are, e.g. ``"openai/text-embedding-3-small"``:
            caches and model cards key on it, so two different stores must not share a name.
        fallback (BlackBox | None): Asked for the texts the store lacks; without one they raise
            :class:`MissingVectorError`.
        embedding_column (str): The vectors' column. Defaults to "embedding".
    """

    def __init__(self, vectors: Any, name: str, fallback: BlackBox | None = None,
                 embedding_column: str = "embedding") -> None:
        if not name:
            raise ValueError("PrecomputedBlackBox needs the black box's name (caches and model cards key on it)")
        self.fallback, self.name = fallback, name
        source = str(vectors) if isinstance(vectors, (str, os.PathLike)) else type(vectors).__name__
        if isinstance(vectors, Mapping):
            labels = list(vectors)
            keys = [text_hash(t) for t in labels]
            matrix = list(vectors.values())
        else:
            table = _read_table(vectors, source)
            if embedding_column not in table.column_names:
                raise ValueError(f"{source}: no {embedding_column!r} column (columns: {', '.join(table.column_names)})")
            if "text_sha256" in table.column_names:
                labels = keys = table["text_sha256"].to_pylist()
            elif "text" in table.column_names:
                labels = table["text"].to_pylist()
                keys = [text_hash(t) for t in labels]
            else:
                raise ValueError(f"{source}: needs a 'text' or 'text_sha256' column beside {embedding_column!r}")
            matrix = table[embedding_column].to_pylist()
        self._matrix = _checked(matrix, labels, source) if keys else np.zeros((0, 0), dtype=np.float32)
        self._row = {k: i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._row)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        rows = [self._row.get(text_hash(t)) for t in texts]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing and self.fallback is None:
            raise MissingVectorError(f"{self.name}: no vector for {len(missing)} of {len(texts)} texts, e.g. "
                                     f"{texts[missing[0]][:80]!r}; add them to the store or pass a fallback")
        out = np.empty((len(texts), self._matrix.shape[1] if len(self._row) else 0), dtype=np.float32)
        found = [i for i, r in enumerate(rows) if r is not None]
        if found:
            out[found] = self._matrix[[rows[i] for i in found]]
        if missing:
            asked = [texts[i] for i in missing]
            extra = _checked(self.fallback.embed(asked), asked, self.fallback.name)
            if out.shape[1] == 0:
                out = np.empty((len(texts), extra.shape[1]), dtype=np.float32)
            elif extra.shape[1] != out.shape[1]:
                raise ValueError(f"{self.name}: the fallback {self.fallback.name} gives {extra.shape[1]}-d vectors, "
                                 f"the store {out.shape[1]}-d")
            out[missing] = extra
        return out


# The key of the record a store keeps in its parquet schema metadata (JSON: "black_box" names it).
STORE_RECORD = b"st_hardneg"


def load_black_box(source: str | os.PathLike, name: str | None = None, *,
                   max_seq_length: int | None = None) -> PrecomputedBlackBox | ModelBlackBox:
    """A black box from a path: a parquet store of precomputed vectors, or a frozen SentenceTransformer folder.

    Args:
        source (str | PathLike): A parquet file (``text`` or ``text_sha256``, plus ``embedding``),
            or a model folder (one with ``modules.json``).
        name (str | None): The black box's name. A store's defaults to the ``black_box`` of the
            record in its schema metadata (``STORE_RECORD``, written by the recipes' store writer);
            a model's to its folder name.
        max_seq_length (int | None): A model's max tokens (default: the model's own).

    Raises:
        FileNotFoundError: Nothing at ``source``.
        ValueError: A folder that is no model, a file that is no readable store, or a store whose
            name is neither given nor recorded.

    Example::

        from st_hardneg.mafin import load_black_box
        box = load_black_box("all-mpnet-base-v2-256.parquet")   # named by its own record
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file():
            raise ValueError(f"{source}: a folder must be a SentenceTransformer model (no modules.json)")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path))
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        return ModelBlackBox(model, name=name or path.name)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file or folder")
    import pyarrow.parquet as pq

    try:
        record = (pq.read_schema(path).metadata or {}).get(STORE_RECORD)
        recorded = json.loads(record).get("black_box") if record else None
    except Exception as error:  # noqa: BLE001 - pyarrow and json raise several types for one problem
        raise ValueError(f"{source}: not a readable parquet store ({error})") from error
    if not (name or recorded):
        raise ValueError(f"{source}: the store does not record its black box's name; give it one")
    return PrecomputedBlackBox(path, name=name or recorded)


def _read_table(vectors: Any, source: str) -> Any:
    """A ``pyarrow.Table`` from a parquet path or a ``datasets.Dataset``."""
    import pyarrow.parquet as pq

    if isinstance(vectors, (str, os.PathLike)):
        if not Path(vectors).is_file():
            raise FileNotFoundError(f"{source}: no such file")
        return pq.read_table(str(vectors))
    data = getattr(vectors, "data", None)  # datasets.Dataset keeps its Arrow table here
    table = getattr(data, "table", data)
    if table is None or not hasattr(table, "column_names"):
        raise TypeError(f"cannot read vectors from {source}: pass a datasets.Dataset, a parquet path or a dict")
    return table


class VectorCache:
    """Fetch each text's black-box vector once: in memory, and with ``folder`` on disk across runs.

    On disk, vectors live under ``folder/<sha256 of the black box's name>/`` in parquet shards
    (``text_sha256``, ``embedding``), one shard per batch of new texts, each written to a
    temporary name and renamed into place, so an interrupted run loses at most its last batch
    and never corrupts what was saved before.

    Args:
        black_box (BlackBox): The source of vectors.
        folder (str | os.PathLike | None): Where to keep them; None keeps them in memory only.
        chunk_size (int): New texts are fetched and saved this many at a time.

    Example::

        box = VectorCache(CallableBlackBox(client.embed, name="my-api-model"), folder="~/.cache/st_hardneg/blackbox")
        box.embed(corpus)   # asks the API for every text once; later runs read the shards
    """

    def __init__(self, black_box: BlackBox, folder: str | os.PathLike | None = None, chunk_size: int = 1024) -> None:
        if not isinstance(black_box, BlackBox):
            raise TypeError(f"black_box must have a name and an embed(texts) method, got {type(black_box).__name__}")
        self.black_box, self.name = black_box, black_box.name
        self.folder = None if folder is None else Path(folder).expanduser() / text_hash(black_box.name)[:16]
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        self.chunk_size = chunk_size
        self._vectors: dict[str, np.ndarray] = {}
        self.stats = {"fetched": 0, "from_cache": 0}
        if self.folder is not None and self.folder.is_dir():
            import pyarrow.parquet as pq

            for shard in sorted(self.folder.glob("*.parquet")):
                try:
                    table = pq.read_table(shard)
                    keys, vectors = table["text_sha256"].to_pylist(), table["embedding"].to_pylist()
                except Exception as error:  # noqa: BLE001 - an unreadable shard costs its texts a refetch, no more
                    logger.warning("%s: unreadable cache shard (%s); its texts will be fetched again", shard, error)
                    continue
                for key, vector in zip(keys, vectors):
                    self._vectors[key] = np.asarray(vector, dtype=np.float32)
            sizes = {v.shape[0] for v in self._vectors.values()}
            if len(sizes) > 1:
                raise ValueError(f"{self.folder}: vectors of sizes {sorted(sizes)} under one black box name "
                                 f"({self.name!r}); two black boxes share the name")

    def __len__(self) -> int:
        return len(self._vectors)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        keys = [text_hash(t) for t in texts]
        new = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        fresh = set(new)
        self.stats["from_cache"] += sum(k not in fresh for k in keys)
        text_of = dict(zip(keys, texts))
        for start in range(0, len(new), self.chunk_size):  # saved chunk by chunk: a killed run keeps its work
            chunk = new[start:start + self.chunk_size]
            # Any object with embed() is a black box: its vectors are checked (one per text, finite, non-zero, unit).
            asked = [text_of[k] for k in chunk]
            fetched = _checked(self.black_box.embed(asked), asked, self.name)
            if self._vectors and fetched.shape[1] != next(iter(self._vectors.values())).shape[0]:
                raise ValueError(f"{self.name}: got {fetched.shape[1]}-d vectors, but the cache holds "
                                 f"{next(iter(self._vectors.values())).shape[0]}-d ones under this name"
                                 + (f" ({self.folder})" if self.folder else ""))
            self.stats["fetched"] += len(chunk)
            self._save(chunk, fetched)
            self._vectors.update(zip(chunk, fetched))
        return np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def _save(self, keys: list[str], vectors: np.ndarray) -> None:
        if self.folder is None:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "name.txt").write_text(self.name, encoding="utf-8")
        shard = uuid.uuid4().hex
        tmp = self.folder / f".{shard}.tmp"
        pq.write_table(pa.table({"text_sha256": keys, "embedding": list(vectors)}), tmp)
        os.replace(tmp, self.folder / f"{shard}.parquet")
