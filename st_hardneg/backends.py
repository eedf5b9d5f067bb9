"""Fast CPU encoding: a SentenceTransformer whose transformer runs on ONNX Runtime or OpenVINO.

sentence-transformers has ``backend="onnx"`` / ``"openvino"`` itself, through Optimum; with
transformers 5 those extras do not install (``optimum-onnx`` 0.1 pins ``transformers<4.58``,
``optimum-intel`` resolves to 1.15). This module is the thin layer that does the same on the
runtimes directly, and steps aside once sentence-transformers' own backends work again.

Only the transformer module changes: it is exported once with ``torch.onnx.export`` (and, for
OpenVINO, converted with ``openvino.convert_model``), optionally quantised to int8, and cached in
``<cache root>/exports/<key>/``, where the key covers the weights' fingerprint, the backend, the
export settings and the runtime versions; tokenisation, pooling and normalisation stay
sentence-transformers' own, so ``encode``, prompts and ``max_seq_length`` behave as before.

Backends:

- ``"torch"``: the model as it is (the default).
- ``"onnx"``: ONNX Runtime, fp32, with its transformer graph fusions. Same numbers as torch up to
  float rounding.
- ``"onnx-int8"``: dynamic int8 quantisation of the fused graph's matrix multiplications, with
  per-channel weights, and the feed-forward output projections (whose inputs carry the outliers
  that int8 handles worst) left in fp32 (fidelity on SciFact: ``benchmarks/bench_mining.py``).
- ``"openvino"``: OpenVINO, fp32.
- ``"openvino-int8"``: OpenVINO with NNCF post-training int8 quantisation (transformer preset,
  SmoothQuant), calibrated on texts (the package's embedded sample unless given).

torch's own ``quantize_dynamic`` is not offered: its API is deprecated (moving to torchao).

A quantised model is a different model: the backend and its settings are part of the embedding
cache key and of the provenance recorded on mined datasets and cards.

References:
    - ONNX Runtime, "Quantize ONNX models" (dynamic quantisation, the AVX2 saturation note):
      https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
    - Bondarenko et al., "Understanding and Overcoming the Challenges of Efficient Transformer
      Quantization", EMNLP 2021 (outliers in the feed-forward output of BERT-like models).
    - Xiao et al., "SmoothQuant", ICML 2023 (used by NNCF's transformer preset).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import OptionError
from .models import BACKENDS, Backend

logger = logging.getLogger(__name__)


_EXTRAS = {
    "onnx": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "nncf", "onnx"),
}
# The export settings that change the exported model: part of its cache key.
_OPSET = 17
_ATTENTION = "eager"
_ONNX_INT8 = {"per_channel": True, "weight_type": "QInt8", "op_types": ["MatMul"], "keep_fp32": "ffn-output"}
_OPENVINO_INT8 = {"preset": "transformer", "calibration_size": 300}
# Least cosine to the torch embeddings, on the check texts, that an export must keep.
_MIN_COSINE = {"fp32": 0.999, "int8": 0.95}


def check_backend(backend: str) -> str:
    """``backend`` if it is known and its runtime is installed, else a clear ``OptionError``."""
    if backend not in BACKENDS:
        raise OptionError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    family = backend.split("-")[0]
    for module in _EXTRAS.get(family, ()):
        try:
            __import__(module)
        except ImportError as err:
            raise OptionError(
                f"backend {backend!r} needs {module!r}: pip install 'st-hardneg[{family}]'"
            ) from err
    return backend


def default_num_threads() -> int:
    """Threads for the runtimes: the cores this process may use (``os.sched_getaffinity``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def exports_dir(cache_folder: str | os.PathLike | None = None) -> Path:
    """Where exported models are kept: ``exports/`` beside the embedding cache."""
    from .embeddings import default_cache_dir

    base = Path(cache_folder).expanduser() if cache_folder not in (None, "auto") else default_cache_dir()
    return base.parent / "exports" if base.name == "embeddings" else base / "exports"


def apply_backend(
    model: Any,
    backend: Backend = "torch",
    *,
    cache_folder: str | os.PathLike | None = None,
    num_threads: int | None = None,
    calibration_texts: Sequence[str] | None = None,
    copy_model: bool = True,
) -> Any:
    """A SentenceTransformer that encodes like ``model`` on ``backend``.

    Args:
        model (SentenceTransformer): A model whose first module is a ``Transformer``.
        backend (str): One of :data:`BACKENDS`. ``"torch"`` returns ``model`` as it is.
        cache_folder (str | None): Root of the cache (exports go to its ``exports/`` sibling of
            ``embeddings/``); ``None`` for ``~/.cache/st_hardneg``.
        num_threads (int | None): Intra-op threads of the runtime; defaults to the usable cores.
        calibration_texts (list[str] | None): Texts to calibrate ``"openvino-int8"`` on (the corpus
            you will encode is the best choice); defaults to the embedded SciFact sample. They are
            part of the export's cache key.
        copy_model (bool): Work on a copy, leaving ``model`` as it was (``False`` converts ``model``
            itself, saving memory when nothing else uses it).

    Returns:
        SentenceTransformer: For inference (``encode``); train the torch model, not this one.
    """
    check_backend(backend)
    if backend == "torch":
        return model
    from sentence_transformers.base.modules import Transformer

    first = model[0]
    if not isinstance(first, Transformer):
        raise OptionError(f"backend {backend!r} needs a model whose first module is a Transformer, "
                          f"got {type(first).__name__}")
    num_threads = num_threads or default_num_threads()
    fast = copy.deepcopy(model) if copy_model else model
    transformer = fast[0]
    source = transformer.model
    input_names = _input_names(transformer)
    from .embeddings import model_fingerprint

    settings = _settings(backend, calibration_texts)
    key_source = {"weights": model_fingerprint(model), "backend": backend, "settings": settings,
                  "inputs": input_names, "runtimes": _runtime_versions(backend)}
    key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()
    folder = exports_dir(cache_folder) / key
    record = _read_record(folder)
    if record is None:
        texts = list(calibration_texts) if calibration_texts is not None else None
        check = _check_texts(texts)
        reference = fast.encode(check, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        _export(source, transformer, backend, folder, input_names, texts)
    else:
        logger.info("reusing the %s export in %s", backend, folder)
    transformer.model = RuntimeModel(_open(backend, folder, num_threads), input_names, source.config, backend)
    if record is None:
        got = fast.encode(check, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        # Checked once, at export: a graph that computes something else is refused, never used silently.
        record = {**key_source, "min_cosine_to_torch": float((got * reference).sum(axis=1).min()),
                  "checked_on": len(check)}
        _write_atomic(folder / "done.json", json.dumps(record, indent=1, sort_keys=True))
    floor = _MIN_COSINE["int8" if backend.endswith("int8") else "fp32"]
    if record["min_cosine_to_torch"] < floor:
        raise BackendFidelityError(
            f"backend {backend!r} changes this model's embeddings too much: minimum cosine "
            f"{record['min_cosine_to_torch']:.3f} to torch on {record['checked_on']} sample texts (needs {floor}); "
            + ("use 'onnx', or 'openvino-int8', whose SmoothQuant handles activation outliers"
               if backend == "onnx-int8" else "use 'torch' or another backend"))
    # The exported graph replaces the weights: this record is what fingerprints and provenance see.
    fast.st_hardneg_backend = {"backend": backend, "export": key[:16], "settings": settings}
    return fast.eval()


def _read_record(folder: Path) -> dict | None:
    """The export's ``done.json``, or None when there is none; an unreadable or outdated one is removed
    with its export (it is redone), since nothing can vouch for the files beside it."""
    path = folder / "done.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if isinstance(record, dict) and isinstance(record.get("min_cosine_to_torch"), float) \
                and isinstance(record.get("checked_on"), int):
            return record
    except (OSError, ValueError):
        pass
    logger.warning("exporting again: %s is unreadable or from an older version", path)
    shutil.rmtree(folder, ignore_errors=True)
    return None


class BackendFidelityError(OptionError):
    """An exported or quantised model whose embeddings stray too far from the torch model's."""


def _check_texts(calibration_texts: list[str] | None) -> list[str]:
    """Texts for the fidelity check at export: the calibration texts' first 48, or the embedded sample's."""
    texts = calibration_texts or _sample_texts()
    return list(texts[:48])


class RuntimeModel(torch.nn.Module):
    """Stands in for the Hugging Face model inside sentence-transformers' ``Transformer`` module.

    Its ``forward`` takes the tokenizer's tensors and returns ``{"last_hidden_state": tensor}``,
    which is all the ``Transformer`` module reads.
    """

    def __init__(self, run: Any, input_names: list[str], config: Any, backend: str) -> None:
        super().__init__()
        self._run, self.input_names, self.config, self.backend = run, input_names, config, backend

    def forward(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None, **_: Any) -> dict:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if token_type_ids is None and "token_type_ids" in self.input_names:
            given["token_type_ids"] = torch.zeros_like(input_ids)
        feeds = {name: given[name].detach().cpu().numpy().astype(np.int64) for name in self.input_names}
        return {"last_hidden_state": torch.from_numpy(np.ascontiguousarray(self._run(feeds)))}

    def __repr__(self) -> str:
        return f"RuntimeModel(backend={self.backend!r})"


def _input_names(transformer: Any) -> list[str]:
    names = transformer.tokenizer("a", return_tensors="np").keys()
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names]


def _settings(backend: str, calibration_texts: Sequence[str] | None) -> dict:
    settings: dict[str, Any] = {"opset": _OPSET, "attention": _ATTENTION}
    if backend == "onnx-int8":
        settings.update(_ONNX_INT8)
    if backend == "openvino-int8":
        from .embeddings import texts_digest

        settings.update(_OPENVINO_INT8)
        settings["calibration"] = texts_digest(calibration_texts)[:16] if calibration_texts else "embedded-sample"
    return settings


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _runtime_versions(backend: str) -> dict:
    import importlib.metadata as md

    names = ["torch", "onnx"] + (["onnxruntime"] if backend.startswith("onnx") else ["openvino", "nncf"])
    return {n: md.version(n) for n in names}


# -- export -----------------------------------------------------------------------------------
def _export(source: Any, transformer: Any, backend: str, folder: Path, input_names: list[str],
            calibration_texts: list[str] | None) -> None:
    """Write the exported model to ``folder`` through a temporary sibling (a killed run leaves nothing)."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        logger.info("exporting the model for backend %s (once; cached in %s)", backend, folder)
        onnx_path = tmp / "model.onnx"
        _export_onnx(source, transformer, input_names, onnx_path)
        if backend == "onnx":
            _optimize_onnx(onnx_path, tmp / "model.opt.onnx", source.config)
        elif backend == "onnx-int8":
            _optimize_onnx(onnx_path, tmp / "model.opt.onnx", source.config)
            _quantize_onnx(tmp / "model.opt.onnx", tmp / "model.int8.onnx")
        else:
            _export_openvino(onnx_path, tmp, backend, transformer, input_names, calibration_texts)
        if folder.exists():  # another process finished first; keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
            return
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process got there in between
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _export_onnx(source: Any, transformer: Any, input_names: list[str], path: Path) -> None:
    class LastHidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(input_names, inputs)), return_dict=True).last_hidden_state

    example = transformer.tokenizer(["an example", "another, longer example sentence"], padding=True,
                                    return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
    was_training = source.training
    source.eval()
    if _ATTENTION == "eager" and hasattr(source, "set_attn_implementation"):
        # The eager attention graph is the pattern ONNX Runtime fuses into one Attention op.
        source.set_attn_implementation("eager")
    try:
        # The tracer warns about every shape-dependent branch it freezes; the axes above keep them dynamic.
        with torch.no_grad(), warnings.catch_warnings():
            for category in (torch.jit.TracerWarning, FutureWarning, DeprecationWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            torch.onnx.export(LastHidden(source), tuple(example[n] for n in input_names), str(path),
                              input_names=input_names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=_OPSET, dynamo=False)
    finally:
        source.train(was_training)


def _optimize_onnx(path: Path, out: Path, config: Any) -> None:
    """ONNX Runtime's transformer fusions (attention, layer norm, GELU), saved so they run once."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(path), model_type=_ort_model_type(config),
                               num_heads=getattr(config, "num_attention_heads", 0),
                               hidden_size=getattr(config, "hidden_size", 0), opt_level=1)
    optimized.save_model_to_file(str(out))


def _ort_model_type(config: Any) -> str:
    return "bert" if config.model_type not in ("bart", "gpt2", "t5") else config.model_type


def _quantize_onnx(path: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = _ffn_outputs(onnx.load(str(path), load_external_data=False).graph) \
        if _ONNX_INT8["keep_fp32"] == "ffn-output" else []
    # The quantiser advises pre-processing through the root logger; that advice is for static quantisation.
    advice = _DropMessage("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(str(path), str(out), per_channel=_ONNX_INT8["per_channel"],
                         weight_type=getattr(QuantType, _ONNX_INT8["weight_type"]),
                         op_types_to_quantize=_ONNX_INT8["op_types"], nodes_to_exclude=keep,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.getLogger().removeFilter(advice)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _ffn_outputs(graph: Any) -> list[str]:
    """The MatMuls that are feed-forward output projections: their weight is [intermediate, hidden]."""
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    names = []
    for node in graph.node:
        weight = next((shapes[i] for i in node.input if i in shapes), None) if node.op_type == "MatMul" else None
        if weight is not None and len(weight) == 2 and weight[0] > weight[1]:
            names.append(node.name)
    return names


def _export_openvino(onnx_path: Path, folder: Path, backend: str, transformer: Any, input_names: list[str],
                     calibration_texts: list[str] | None) -> None:
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if backend == "openvino-int8":
        import nncf

        texts = calibration_texts or _sample_texts()
        texts = texts[: _OPENVINO_INT8["calibration_size"]]
        max_length = transformer.max_seq_length or 256
        batches = [transformer.tokenizer(texts[i : i + 8], padding=True, truncation=True, max_length=max_length,
                                         return_tensors="np") for i in range(0, len(texts), 8)]
        data = nncf.Dataset([{n: b[n].astype(np.int64) for n in input_names} for b in batches])
        with keeping_signal_stack():  # NNCF compiles the model on Cores of its own to collect statistics
            model = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))
    ov.save_model(model, str(folder / "model.xml"))


def _sample_texts() -> list[str]:
    from .beir import load_beir
    from .sample import sample_data_path

    return list(load_beir(sample_data_path()).corpus_texts)


# -- runtimes ---------------------------------------------------------------------------------
def _open(backend: str, folder: Path, num_threads: int) -> Any:
    """A function from feeds (name -> int64 array) to the last hidden state."""
    if backend.startswith("onnx"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        name = "model.int8.onnx" if backend == "onnx-int8" else "model.opt.onnx"
        session = ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)[0]
    import openvino as ov

    with keeping_signal_stack():
        compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU",
                                           {"INFERENCE_NUM_THREADS": num_threads, "NUM_STREAMS": 1,
                                            "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    return lambda feeds: request.infer(feeds)[0].copy()


class _SignalStack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]  # Linux


@contextlib.contextmanager
def keeping_signal_stack() -> Iterator[None]:
    """Give the calling thread back its alternate signal stack once OpenVINO work is done (Linux).

    OpenVINO's CPU plugin (seen with 2026.4) installs a signal stack of its own on the thread that
    compiles a model; when the plugin goes, it unmaps that stack and, if it is still the current
    one, puts back the stack it found. Two plugins that go in the order they came (two models, or
    NNCF's statistics engines) leave the thread on unmapped memory, and the next signal handled
    there (Ctrl-C, faulthandler) ends the process with SIGSEGV. Once the original is back, no
    plugin's stack is current, so none of them restores anything later.
    """
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    saved = _SignalStack()
    if libc is None or libc.sigaltstack(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        if libc.sigaltstack(ctypes.byref(saved), None) != 0:
            logger.warning("could not restore this thread's signal stack after OpenVINO (errno %d); a signal "
                           "handled on it after its models are freed may crash the process", ctypes.get_errno())
