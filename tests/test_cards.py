"""Card templates render with and without their optional parts, and parse with huggingface_hub."""

import copy

import pytest
from huggingface_hub import DatasetCard, ModelCard

from st_hardneg import mine
from st_hardneg.cards import mining_recorded, public, record_mining_in_card, render_dataset_card
from st_hardneg.plots import hardness_png

from conftest import slice_data


@pytest.fixture(scope="module")
def record(scifact, model, cache_dir):
    result = mine(slice_data(scifact, 12, 450), model, num_negatives=2, cache_folder=cache_dir, verbose=False)
    return result.provenance("n-tuple")["st_hardneg"]


ECI = {"eci": 1.234, "capacity": 1.5, "hardness": 0.81, "safety": 0.92, "efficiency": 0.86, "unsafe_share": 0.05,
       "scorer": "bi-encoder[x]", "alpha": 0.95}


def test_dataset_card_with_all_parts(record):
    card = render_dataset_card(record, "tester/hn", columns=["anchor", "positive", "negative_1", "negative_2"],
                               eci=ECI, histogram="assets/hardness.png", license="cc-by-4.0",
                               source_datasets=["allenai/scifact"])
    parsed = DatasetCard(str(card))
    assert {"sentence-transformers", "hard-negatives"} <= set(parsed.data.tags)
    assert parsed.data.license == "cc-by-4.0" and parsed.data.size_categories == ["n<1K"]
    text = parsed.text
    assert "TopK-PercPos(0.95)" in text and "| 1.2340 |" in text and "assets/hardness.png" in text
    assert 'load_dataset("tester/hn", split="train")' in text and "MultipleNegativesRankingLoss" in text
    assert record["config"]["model"]["fingerprint"][:12] in text
    assert "resolve_ids" not in text and "load_resolved" not in text
    assert "compared with the lowest-scoring one" in text
    own = copy.deepcopy(record)
    own["config"]["filter"].update(positive_reference="own", rule="TopK-PercPos(0.95) + own positive")
    text = DatasetCard(str(render_dataset_card(own, "tester/hn", columns=["anchor", "positive", "negative_1"]))).text
    assert "compared with its row's own positive" in text and "lowest-scoring" not in text


def test_ids_card_shows_how_to_resolve_the_ids_not_training_on_them(record):
    ids = {**record, "format": "ids"}
    columns = ["query_id", "positive_id", "negative_ids"]
    text = DatasetCard(str(render_dataset_card(ids, "tester/hn-ids", columns=columns, has_corpus=True))).text
    assert 'dataset = load_resolved("tester/hn-ids")\n' in text and "from st_hardneg.hub import load_resolved" in text
    assert 'load_dataset("tester/hn-ids", "corpus", split="train")' in text
    assert 'dataset = load_dataset("tester/hn-ids", split="train")' not in text  # no loss on raw id columns
    bare = DatasetCard(str(render_dataset_card(ids, "tester/hn-ids", columns=columns))).text
    assert "were **not** pushed" in bare and "resolve_ids(load_dataset(\"tester/hn-ids\", split=\"train\"), corpus, queries)" in bare
    assert "load_resolved" not in bare and "SentenceTransformerTrainer" not in bare


def test_cards_show_no_local_absolute_path(record, model, tmp_path):
    """Older sidecars and user-given names can hold machine paths; a published card shows only their last part."""
    config = {**record["config"], "data": {**record["config"]["data"], "source": "beir:/home/ana/data/scifact#train"},
              "model": {**record["config"]["model"], "name": "/home/ana/models/minilm-ft"},
              "teachers": ["cross-encoder[/home/ana/models/reranker]"]}
    eci = {**ECI, "scorer": "bi-encoder[/home/ana/models/minilm-ft]"}
    card = str(render_dataset_card({**record, "config": config}, "tester/hn", columns=["anchor", "positive"], eci=eci))
    assert "/home/ana" not in card
    assert "beir:scifact#train" in card and "`minilm-ft`" in card and "cross-encoder[reranker]" in card
    student = copy.deepcopy(model)
    record_mining_in_card(student, config=config, eci=eci, lines=["mined from /home/ana/data/scifact"])
    student.save(str(tmp_path / "model"))
    readme = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert "/home/ana" not in readme and "scorer `bi-encoder[minilm-ft]`" in readme
    assert public("https://huggingface.co/datasets/a/b and assets/x.png, rows in / out") == \
        "https://huggingface.co/datasets/a/b and assets/x.png, rows in / out"


def test_dataset_card_without_optional_parts(record):
    text = DatasetCard(str(render_dataset_card(record, "tester/hn", columns=["anchor", "positive"]))).text
    assert "## ECI" not in text and "hardness.png" not in text and "resolve_ids" not in text
    assert "## Statistics" in text and "{{" not in text


def test_model_card_section_with_and_without_parts(model, record, tmp_path):
    student = copy.deepcopy(model)
    record_mining_in_card(student, dataset_repo_id=None)
    student.save(str(tmp_path / "bare"))
    bare = ModelCard.load(str(tmp_path / "bare" / "README.md")).text
    assert "### Hard Negatives" in bare and "ECI of the negatives" not in bare
    record_mining_in_card(student, config=record["config"], eci=ECI, dataset_repo_id="tester/hn",
                          eval_results={"scifact-test": {"ndcg@10": 0.66, "recall@100": 0.93}})
    student.save(str(tmp_path / "full"))
    card = ModelCard.load(str(tmp_path / "full" / "README.md"))
    assert card.text.count("### Hard Negatives") == 1  # re-recording replaces the section
    assert "https://huggingface.co/datasets/tester/hn" in card.text and "| scifact-test | 0.6600 |" in card.text
    assert "ECI of the negatives: 1.2340" in card.text and "hard-negatives" in card.data.tags
    assert "## Training Details" in card.text  # sentence-transformers' own card is still all there
    assert card.data.datasets == ["tester/hn"]  # the Hub links model and dataset through this metadata


def test_model_card_links_the_dataset_on_the_configured_endpoint(model, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://hub.example.org")
    student = copy.deepcopy(model)
    record_mining_in_card(student, dataset_repo_id="tester/hn")
    student.save(str(tmp_path / "model"))
    text = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert "(https://hub.example.org/datasets/tester/hn)" in text and "huggingface.co/datasets/tester/hn" not in text


def test_mining_recorded_restores_the_template_and_removes_its_folder(model, tmp_path):
    student = copy.deepcopy(model)
    before = student.model_card_data.template_path
    with mining_recorded(student, lines=["scoped"]) as template:
        assert template.is_file() and student.model_card_data.template_path == template
        student.save(str(tmp_path / "model"))
    assert "- scoped" in (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert student.model_card_data.template_path == before and not template.parent.exists()


def test_a_later_recording_without_lines_keeps_the_earlier_lines(model, record, tmp_path):
    """MiningDataCollator records its lines before training; push_model records the config later."""
    student = copy.deepcopy(model)
    record_mining_in_card(student, ["negatives served by MiningDataCollator, refreshed every 10 steps"])
    with mining_recorded(student, config=record["config"]):
        student.save(str(tmp_path / "model"))
    text = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert "- negatives served by MiningDataCollator, refreshed every 10 steps" in text
    assert text.count("### Hard Negatives") == 1


def test_hardness_histogram_is_a_real_plot(record):
    from io import BytesIO

    import numpy as np
    from PIL import Image

    histogram = record["stats"]["hardness_histogram"]
    png = hardness_png(histogram["counts"], histogram["edges"], relative_margin=0.05)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    def count(png_bytes, colour):
        pixels = np.asarray(Image.open(BytesIO(png_bytes)).convert("RGB"))
        return int((pixels == colour).all(axis=2).sum())

    assert Image.open(BytesIO(png)).size == (640, 260)
    bars, cut_off = (76, 114, 176), (221, 132, 82)  # the bar colour and the dashed cut-off line
    assert count(png, bars) > 1000 and count(png, cut_off) > 50
    assert hardness_png(histogram["counts"], histogram["edges"], relative_margin=0.05) == png  # deterministic
    assert count(hardness_png(histogram["counts"], histogram["edges"], relative_margin=None), cut_off) == 0
    with pytest.raises(ValueError, match="3 edges for 3 bins"):
        hardness_png([1, 2, 3], [0.0, 0.5, 1.0])


def test_without_matplotlib_the_card_simply_has_no_histogram(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert hardness_png([1, 2], [0.0, 0.5, 1.0]) is None


def test_a_recorded_template_is_removed_with_its_card_not_left_in_the_temp_dir(tmp_path, monkeypatch):
    # The collator records the section before training and leaves it in place until the model is
    # saved, so the temporary template cannot be removed by a `with` block there.
    import gc
    import tempfile

    from sentence_transformers.sentence_transformer.model_card import SentenceTransformerModelCardData

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class Model:  # the two attributes record_mining_in_card reads
        model_card_data = SentenceTransformerModelCardData()

    model = Model()
    path = record_mining_in_card(model, ["a line"])
    assert path.exists() and path.parent.parent == tmp_path
    del model, Model
    gc.collect()
    assert not list(tmp_path.glob("st_hardneg_card_*"))
