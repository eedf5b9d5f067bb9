"""Encoding texts with a SentenceTransformer, with a cache keyed on the model's *weights*.

sentence-transformers' ``mine_hard_negatives(cache_folder=...)`` keys its cache on the model's
name, so a fine-tuned copy saved under the same name silently reuses stale embeddings. Here the
key is a fingerprint of every parameter and buffer, the module configuration, the prompt, the max
sequence length and the texts: change any of them and the cache misses.

A long encoding is cached chunk by chunk as it goes (``<cache>/partial/<key>-<chunk size>/``), so
an interrupted run (Ctrl-C, a killed job) resumes at the first missing chunk; the chunks are
merged into the one ``<key>.npy`` file when the collection is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .data import OptionError

logger = logging.getLogger(__name__)

Kind = Literal["query", "document"]


def model_fingerprint(model: Any) -> str:
    """SHA-256 over a model's parameters, buffers and module configuration.

    Hashes the raw bytes of every tensor in ``state_dict()`` (about 0.2 s for all-MiniLM-L6-v2 on
    CPU), so two models agree only when their weights are bit-identical.
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        # View as bytes: bf16 and friends have no numpy dtype.
        digest.update(tensor.detach().cpu().contiguous().flatten().view(-1).view(dtype=_uint8()).numpy())
    digest.update(repr([type(m).__name__ for m in model.children()]).encode())
    # What state_dict does not hold: e.g. Pooling's mode (cls / mean), a tokenizer's lower-casing.
    for module in model.children():
        config = getattr(module, "get_config_dict", None)
        if callable(config):
            digest.update(json.dumps(config(), sort_keys=True, default=repr).encode())
    # A model on an ONNX/OpenVINO backend holds no transformer weights; its record names the export
    # (which is keyed on the source weights) and the quantisation, so int8 and fp32 never share a key.
    for attr in ("truncate_dim", "similarity_fn_name", "st_hardneg_backend"):
        digest.update(repr(getattr(model, attr, None)).encode())
    return digest.hexdigest()


def _uint8():
    import torch

    return torch.uint8


def texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("ST_HARDNEG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "st_hardneg"
    )
    return Path(base) / "embeddings"


class Embedder:
    """Encodes queries and documents with a SentenceTransformer; L2-normalised float32 output.

    Queries go through ``encode_query`` and documents through ``encode_document`` so the model's
    own ``query``/``document`` prompts apply; explicit prompts override them.

    Args:
        model: A ``SentenceTransformer``.
        batch_size: Encoding batch size.
        query_prompt / document_prompt: Raw prompt strings (override the model's prompts).
        query_prompt_name / document_prompt_name: Names of prompts stored in the model.
        cache_dir: Folder for the on-disk cache; ``"auto"`` for ``~/.cache/st_hardneg/embeddings``
            (or ``$ST_HARDNEG_CACHE``); ``None`` disables it.
        show_progress: Show tqdm progress bars while encoding.
        multi_process: Encode in several processes, as sentence-transformers' ``use_multi_process``:
            ``True`` for its default devices, or a list of devices such as ``["cpu", "cpu"]``.
        chunk_size: With a cache, collections longer than this are encoded and saved this many
            texts at a time, so that an interrupted run resumes where it stopped.

    Example::

        embedder = Embedder(model, cache_dir="~/.cache/st_hardneg/embeddings")
        doc_vectors = embedder.encode(corpus_texts, "document")
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int = 32,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        query_prompt_name: str | None = None,
        document_prompt_name: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        show_progress: bool = True,
        multi_process: bool | list[str] = False,
        chunk_size: int = 8192,
    ) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.model = model
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.prompts = {"query": (query_prompt, query_prompt_name), "document": (document_prompt, document_prompt_name)}
        if cache_dir == "auto":  # resolved here, once, for every caller (mine, collator, teachers)
            cache_dir = default_cache_dir()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.show_progress = show_progress
        self.multi_process = multi_process
        # Last collection encoded per kind, so that subsets (widening, rescoring) need no re-encoding.
        # Without a cache_dir nothing is fingerprinted: call forget() after changing the weights.
        self._memory: dict[str, tuple[dict[str, int], np.ndarray, str]] = {}
        self.stats = {"encoded": 0, "from_cache": 0, "from_memory": 0}
        self._fingerprint: tuple[tuple, str] | None = None

    @property
    def name(self) -> str:
        """The model's Hub id, or for a local folder its name and a short weights hash (never the path)."""
        from .models import display_name

        card = getattr(self.model, "model_card_data", None)
        raw = getattr(card, "base_model", None)
        if not raw:
            try:  # a model loaded from a folder knows only its path
                raw = self.model[0].auto_model.config._name_or_path
            except (AttributeError, IndexError, TypeError, KeyError):
                raw = None
        return display_name(raw, self.fingerprint) if raw else type(self.model).__name__

    @property
    def backend(self) -> str:
        """The runtime that encodes: ``"torch"``, or the backend the model was loaded with (see ``load_model``)."""
        return (getattr(self.model, "st_hardneg_backend", None) or {}).get("backend", "torch")

    @property
    def label(self) -> str:
        """:attr:`name`, followed by the backend when it is not torch (a quantised model is another model)."""
        return self.name if self.backend == "torch" else f"{self.name} [{self.backend}]"

    def resolved_prompt(self, kind: Kind) -> str:
        """The prompt text ``kind`` is encoded with; an unknown prompt name raises ``OptionError``.

        As ``encode_query`` / ``encode_document`` choose it: an explicit prompt, else an explicit prompt
        name, else the model's ``query`` (``document``, ``passage`` or ``corpus``) prompt, else its
        ``default_prompt_name``.
        """
        prompt, prompt_name = self.prompts[kind]
        if prompt is not None:
            return prompt
        prompts = getattr(self.model, "prompts", {}) or {}
        if prompt_name is not None:
            if prompt_name not in prompts:
                raise OptionError(f"prompt name {prompt_name!r} is not among the model's prompts {sorted(prompts)}")
            return prompts[prompt_name]
        for name in ("query",) if kind == "query" else ("document", "passage", "corpus"):
            if name in prompts:
                return prompts[name]
        return prompts.get(getattr(self.model, "default_prompt_name", None) or "", "")

    def config_key(self, kind: Kind) -> dict:
        """Everything besides the texts that changes an embedding."""
        key = {
            "model": self.fingerprint(),
            "prompt": self.resolved_prompt(kind),
            "max_seq_length": getattr(self.model, "max_seq_length", None),
            "kind": kind,
            "normalize": True,
        }
        # What the weights do not show (a Mafin model's black box and weight); absent, the key is unchanged.
        extra = getattr(self.model, "embedding_cache_key", None)
        if extra:
            key["extra"] = extra
        return key

    def encode(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        """Embeddings of ``texts`` as a ``[len(texts), dim]`` float32 array, unit-normalised."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        config = self._model_key(kind) if self.cache_dir is not None else ""
        hit = self._memory.get(kind)
        if hit is not None and hit[2] == config and _all_in(hit[0], texts):
            self.stats["from_memory"] += len(texts)
            return hit[1][[hit[0][t] for t in texts]]
        unique = list(dict.fromkeys(texts))
        if len(unique) < len(texts):  # encode each text once; the cache keys on the same list, duplicated or not
            array = self.encode(unique, kind)
            position = {t: i for i, t in enumerate(unique)}
            return array[[position[t] for t in texts]]
        key = None
        if self.cache_dir is not None:
            key = hashlib.sha256((config + texts_digest(texts)).encode()).hexdigest()
            path = self.cache_dir / f"{key}.npy"
            if path.is_file():
                try:
                    array = np.load(path)
                except (OSError, ValueError, EOFError):  # truncated or not an .npy: encode again and replace it
                    array = np.zeros((0, 0), dtype=np.float32)
                if array.shape[0] == len(texts):
                    self.stats["from_cache"] += len(texts)
                    logger.info("embedding cache hit: %d %s texts from %s", len(texts), kind, path)
                    self._remember(kind, texts, array, config)
                    return array
                logger.warning("ignoring corrupt cache file %s (shape %s)", path, array.shape)
        if key is None or len(texts) <= self.chunk_size:
            array = self._encode(texts, kind)
            self.stats["encoded"] += len(texts)
        else:
            array = self._encode_in_chunks(texts, kind, self.cache_dir / "partial" / f"{key}-{self.chunk_size}")
        if key is not None:
            _save_atomic(array, self.cache_dir / f"{key}.npy")
            shutil.rmtree(self.cache_dir / "partial" / f"{key}-{self.chunk_size}", ignore_errors=True)
        self._remember(kind, texts, array, config)
        return array

    def _encode_in_chunks(self, texts: list[str], kind: Kind, folder: Path) -> np.ndarray:
        """Encode ``chunk_size`` texts at a time, each chunk saved to ``folder`` once done; saved chunks are reused."""
        folder.mkdir(parents=True, exist_ok=True)
        starts = range(0, len(texts), self.chunk_size)
        parts: list[np.ndarray] = []
        resumed = 0
        pool = self._start_pool()
        try:
            for i, start in enumerate(starts):
                chunk = texts[start : start + self.chunk_size]
                path = folder / f"{i:06d}.npy"
                part = _load_chunk(path, len(chunk))
                if part is not None:
                    self.stats["from_cache"] += len(chunk)
                    resumed += len(chunk)
                else:
                    part = self._encode(chunk, kind, pool)
                    self.stats["encoded"] += len(chunk)
                    _save_atomic(part, path)
                parts.append(part)
                logger.debug("encoded chunk %d of %d (%ss)", i + 1, len(starts), kind)
        finally:
            self._stop_pool(pool)
        if resumed:
            logger.info("resumed an interrupted encoding: %d of %d %ss came from %s", resumed, len(texts), kind, folder)
        return np.concatenate(parts)

    def _model_key(self, kind: Kind) -> str:
        return json.dumps(self.config_key(kind), sort_keys=True)

    def fingerprint(self) -> str:
        """The model's weight fingerprint, recomputed only when a tensor was replaced or modified."""
        # Optimiser steps modify parameters in place, which bumps each tensor's version counter.
        token = tuple((t.data_ptr(), t._version) for t in self.model.state_dict().values())
        if self._fingerprint is None or self._fingerprint[0] != token:
            self._fingerprint = (token, model_fingerprint(self.model))
        return self._fingerprint[1]

    def _remember(self, kind: Kind, texts: list[str], array: np.ndarray, config: str) -> None:
        self._memory[kind] = ({t: i for i, t in enumerate(texts)}, array, config)

    def forget(self) -> None:
        """Drop the in-memory copies (call after the model's weights change)."""
        self._memory.clear()

    def _start_pool(self) -> Any:
        if not self.multi_process:
            return None
        devices = None if self.multi_process is True else list(self.multi_process)
        return self.model.start_multi_process_pool(target_devices=devices)

    def _stop_pool(self, pool: Any) -> None:
        if pool is not None:
            self.model.stop_multi_process_pool(pool)

    def _encode(self, texts: list[str], kind: Kind, pool: Any = None) -> np.ndarray:
        prompt, prompt_name = self.prompts[kind]
        encode = self.model.encode_query if kind == "query" else self.model.encode_document
        own_pool = pool is None and self.multi_process
        if own_pool:
            pool = self._start_pool()
        try:
            array = encode(texts, prompt=prompt, prompt_name=prompt_name, batch_size=self.batch_size, pool=pool,
                           normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=self.show_progress)
        finally:
            if own_pool:
                self._stop_pool(pool)
        return np.ascontiguousarray(array, dtype=np.float32)


def _save_atomic(array: np.ndarray, path: Path) -> None:
    """Write ``array`` to ``path`` through a temporary sibling: a killed run leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _load_chunk(path: Path, rows: int) -> np.ndarray | None:
    """A saved chunk with ``rows`` rows, or None when it is missing or unreadable (it is then re-encoded)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path)
    except (OSError, ValueError):
        logger.warning("ignoring unreadable cache chunk %s", path)
        return None
    return array if array.ndim == 2 and array.shape[0] == rows else None


def _all_in(index: dict[str, int], texts: Sequence[str]) -> bool:
    return all(t in index for t in texts)
