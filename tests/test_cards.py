"""Card templates render with and without their optional parts, and parse with huggingface_hub."""

import copy
import struct

import pytest
from huggingface_hub import DatasetCard, ModelCard

from st_hardneg import mine
from st_hardneg.cards import record_mining_in_card, render_dataset_card
from st_hardneg.formats import provenance
from st_hardneg.plots import bars_png

from conftest import slice_data


@pytest.fixture(scope="module")
def record(scifact_slice, model, cache_dir):
    result = mine(slice_data(scifact_slice, 12, 600), model, num_negatives=2, cache_dir=cache_dir, show_progress=False)
    return provenance(result, "n-tuple")["st_hardneg"]


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


def test_histogram_png_is_a_valid_image():
    png = bars_png([0, 3, 5, 1], value_range=(0.0, 1.2))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (480, 160)
    assert bars_png([0, 3, 5, 1]) == png  # deterministic


def _pixels(png: bytes):
    import zlib

    import numpy as np

    width, height = struct.unpack(">II", png[16:24])
    idat = png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]  # one IDAT chunk, then its CRC and IEND's length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * 3)
    assert (raw[:, 0] == 0).all()  # filter type 0 on every scanline
    return raw[:, 1:].reshape(height, width, 3)


def test_scatter_png_places_points_by_value():
    import numpy as np
    import pytest

    from st_hardneg.plots import scatter_png

    png = scatter_png([0.0, 1.0, 0.5], [0.0, 1.0, 0.2], labels=["1", "2", "3"], width=200, height=150)
    image = _pixels(png)
    blue = np.argwhere((image == (70, 110, 190)).all(axis=2))
    # Three 7x7 squares: the lowest x sits bottom-left, the highest top-right.
    assert len(blue) == 3 * 49
    ys, xs = blue[:, 0], blue[:, 1]
    assert xs.min() < 60 and ys.max() > 90 and xs.max() > 170 and ys.min() < 25
    assert (image == (200, 40, 40)).all(axis=2).any()  # the point labels
    assert scatter_png([0.0, 1.0, 0.5], [0.0, 1.0, 0.2], labels=["1", "2", "3"], width=200, height=150) == png
    with pytest.raises(ValueError, match="2 labels for 3 points"):
        scatter_png([0, 1, 2], [0, 1, 2], labels=["1", "2"])
    with pytest.raises(ValueError, match="no glyph"):
        scatter_png([0, 1], [0, 1], labels=["a", "b"])
