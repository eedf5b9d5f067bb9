"""Encoding backends: ONNX Runtime and OpenVINO, fp32 and int8, against torch on the embedded sample."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from st_hardneg import OptionError, load_model


@pytest.fixture(scope="module")
def texts(scifact):
    return list(scifact.corpus_texts[:40]) + list(scifact.query_texts[:20])


@pytest.fixture(scope="module")
def reference(model, texts):
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tmp_path_factory.mktemp("exports-cache") / "embeddings"


@pytest.mark.parametrize("backend, min_cos", [("onnx", 0.9999), ("openvino", 0.9999), ("onnx-int8", 0.98),
                                              ("openvino-int8", 0.97)])
def test_backends_encode_like_torch(backend, min_cos, model, texts, reference, exports, monkeypatch):
    from st_hardneg import backends

    # NNCF's calibration dominates the suite's time; 64 texts still pass (300 is the default).
    monkeypatch.setitem(backends._OPENVINO_INT8, "calibration_size", 64)
    fast = load_model(model, backend=backend, cache_folder=exports)
    got = fast.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    cosine = (got * reference).sum(axis=1)
    assert got.shape == reference.shape and cosine.min() >= min_cos, (backend, cosine.min())
    if backend.endswith("int8"):
        assert cosine.min() < 0.99999  # quantised: close, not the same numbers
    # The caller's model is copied, not converted.
    assert type(model[0].model).__name__ == "BertModel"
    assert fast.st_hardneg_backend["backend"] == backend


def test_export_runs_once_and_is_keyed_on_the_weights(model, exports, caplog, monkeypatch):
    import copy

    import torch

    from st_hardneg import backends

    load_model(model, backend="onnx", cache_folder=exports)  # exported by now (or by the test above)
    calls = []
    real = backends._export
    monkeypatch.setattr(backends, "_export", lambda *a, **k: (calls.append(1), real(*a, **k)))
    with caplog.at_level(logging.INFO, logger="st_hardneg.backends"):
        again = load_model(model, backend="onnx", cache_folder=exports)
    assert calls == [] and "reusing the onnx export" in caplog.text
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[0].model.embeddings.word_embeddings.weight[0, 0] += 1.0
    other = load_model(changed, backend="onnx", cache_folder=exports)
    assert calls == [1]
    assert other.st_hardneg_backend["export"] != again.st_hardneg_backend["export"]

    # A record from an older version (no fidelity check in it) is not trusted: the export is redone.
    import json

    (record_path,) = [p for p in exports.parent.glob("exports/*/done.json")
                      if p.parent.name.startswith(other.st_hardneg_backend["export"])]
    old = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({k: v for k, v in old.items() if k != "min_cosine_to_torch"}))
    with caplog.at_level(logging.WARNING, logger="st_hardneg.backends"):
        load_model(changed, backend="onnx", cache_folder=exports)
    assert calls == [1, 1] and "from an older version" in caplog.text
    assert json.loads(record_path.read_text())["min_cosine_to_torch"] == pytest.approx(old["min_cosine_to_torch"])


def test_backend_is_part_of_the_cache_key_and_the_provenance(sample_dir, exports):
    from st_hardneg import mine

    runs = {b: mine(sample_dir, num_negatives=2, max_seq_length=32, cache_folder=exports, verbose=False, backend=b)
            for b in ("torch", "onnx-int8")}
    torch_model, int8_model = runs["torch"].config["model"], runs["onnx-int8"].config["model"]
    assert torch_model["backend"] == "torch" and int8_model["backend"] == "onnx-int8"
    assert int8_model["name"] == torch_model["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert int8_model["fingerprint"] != torch_model["fingerprint"]
    # Different keys, so two sets of cached embeddings (queries and documents for each backend).
    assert len(list(exports.glob("*.npy"))) >= 4


def test_a_bi_encoder_teacher_runs_on_the_backend(model, exports):
    from st_hardneg.teachers import make_scorer

    scorer = make_scorer(model, cache_dir=exports, show_progress=False, backend="onnx")
    assert scorer.name == "bi-encoder[sentence-transformers/all-MiniLM-L6-v2 [onnx]]"
    scores = scorer.score(["what causes fever"], [["Fever is caused by infection.", "Tax law in France."]])[0]
    assert scores[0] > scores[1]


def test_unknown_or_missing_backend_is_a_clear_error(monkeypatch, sample_dir):
    import sys

    from st_hardneg import mine

    with pytest.raises(OptionError, match="unknown backend 'tensorrt'; choose one of torch, onnx, onnx-int8, openvino, openvino-int8"):
        mine(sample_dir, backend="tensorrt")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(OptionError, match=r"backend 'openvino-int8' needs 'openvino': pip install 'st-hardneg\[openvino\]'"):
        load_model(None, backend="openvino-int8")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the signal-stack repair is Linux-only")
def test_two_openvino_models_leave_signal_handling_intact(exports):
    """OpenVINO Cores that go in the order they came used to leave the thread's signal stack freed:
    the next signal handled there (Ctrl-C) killed the process with SIGSEGV. Run apart, as a crash would
    take the test session with it."""
    script = textwrap.dedent(f"""
        import ctypes, gc, signal, threading
        from st_hardneg import load_model
        from st_hardneg.backends import _SignalStack

        def signal_stack():
            stack = _SignalStack()
            assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
            return stack.ss_sp, stack.ss_flags, stack.ss_size

        before = signal_stack()
        first = load_model(None, backend="openvino", cache_folder={str(exports)!r})
        second = load_model(None, backend="openvino", cache_folder={str(exports)!r})
        first.encode(["one"]); second.encode(["two"])
        assert signal_stack() == before, (signal_stack(), before)
        del first; gc.collect(); del second; gc.collect()
        assert signal_stack() == before, (signal_stack(), before)
        signal.signal(signal.SIGUSR1, lambda *args: print("handled", flush=True))
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "handled" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


def test_a_failed_export_leaves_nothing_behind(model, tmp_path, monkeypatch):
    from st_hardneg import backends

    def broken(*args, **kwargs):
        raise RuntimeError("quantiser crashed")

    monkeypatch.setattr(backends, "_quantize_onnx", broken)
    with pytest.raises(RuntimeError, match="quantiser crashed"):
        load_model(model, backend="onnx-int8", cache_folder=tmp_path / "embeddings")
    assert list((tmp_path / "exports").iterdir()) == []


def test_cli_backend_flag(tmp_path, sample_dir):
    from st_hardneg.cli import main

    out = tmp_path / "mined"
    code = main(["mine", "--data", str(sample_dir), "--output", str(out), "--num-negatives", "2",
                 "--max-seq-length", "32", "--backend", "onnx", "--cache-folder", str(tmp_path / "embeddings"),
                 "--quiet"])
    assert code == 0
    from st_hardneg import load_mined

    dataset, record = load_mined(out)
    assert record["config"]["model"]["backend"] == "onnx"
    assert len(dataset) > 0 and np.isfinite(record["stats"]["positive_scores"]["mean"])


def test_an_export_that_strays_from_torch_is_refused_and_stays_refused(model, tmp_path, monkeypatch):
    from st_hardneg import backends

    monkeypatch.setitem(backends._MIN_COSINE, "int8", 1.5)  # no int8 export can pass: as if it computed garbage
    cache = tmp_path / "embeddings"
    with pytest.raises(backends.BackendFidelityError, match=r"backend 'onnx-int8' changes this model's embeddings "
                                                            r"too much: minimum cosine 0\.9\d\d to torch on 48"):
        load_model(model, backend="onnx-int8", cache_folder=cache)
    calls = []
    monkeypatch.setattr(backends, "_export", lambda *a, **k: calls.append(1))
    with pytest.raises(backends.BackendFidelityError):  # the verdict is cached with the export
        load_model(model, backend="onnx-int8", cache_folder=cache)
    assert calls == []
