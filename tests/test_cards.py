"""Card templates render with and without their optional parts, and parse with huggingface_hub."""

import copy

import pytest
from huggingface_hub import DatasetCard, ModelCard

from st_hardneg import mine
from st_hardneg.cards import record_mining_in_card, render_dataset_card
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
                               source_datasets=["allenai/scifact"], has_corpus=True)
    parsed = DatasetCard(str(card))
    assert {"sentence-transformers", "hard-negatives"} <= set(parsed.data.tags)
    assert parsed.data.license == "cc-by-4.0" and parsed.data.size_categories == ["n<1K"]
    text = parsed.text
    assert "TopK-PercPos(0.95)" in text and "| 1.2340 |" in text and "assets/hardness.png" in text
    assert 'load_dataset("tester/hn", split="train")' in text and "MultipleNegativesRankingLoss" in text
    assert record["config"]["model"]["fingerprint"][:12] in text
    assert "resolve_ids" in text


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
