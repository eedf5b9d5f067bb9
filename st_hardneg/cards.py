"""Cards: dataset cards for mined datasets, and mining provenance inside a model's own card.

Templates live in the top-level ``model_cards/`` folder (shipped inside the package) and are
rendered by huggingface_hub (``DatasetCard.from_template``) or, for models, inserted into
sentence-transformers' own card template (extended, never replaced) before it renders.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "model_cards"

NV_RETRIEVER_BIBTEX = """@article{moreira2024nvretriever,
    title={NV-Retriever: Improving text embedding models with effective hard-negative mining},
    author={Moreira, Gabriel de Souza P. and Osmulski, Radek and Xu, Mengyao and Ak, Ronay and Schifferer, Benedikt and Oldridge, Even},
    journal={arXiv preprint arXiv:2407.15831},
    year={2024}
}"""

LOSS_FOR_LAYOUT = {
    "triplet": "MultipleNegativesRankingLoss", "n-tuple": "MultipleNegativesRankingLoss",
    "n-tuple-scores": "DistillKLDivLoss", "n-tuple-margins": "MarginMSELoss",
    "labeled-pair": "ContrastiveLoss", "labeled-list": "MultipleNegativesRankingLoss",
    "ids": "MultipleNegativesRankingLoss",
}
_ANCHOR = "## Training Details\n"  # unconditional in sentence-transformers' template, unlike its subsections
_MARKER = "<!-- st-hardneg:hard-negatives -->"


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def render_dataset_card(record: dict, repo_id: str, *, columns: list[str], eci: dict | None = None,
                        histogram: str | None = None, license: str | None = None,
                        source_datasets: list[str] | None = None, has_corpus: bool = False) -> Any:
    """A ``huggingface_hub.DatasetCard`` for a mined dataset from its provenance record.

    Args:
        record: The ``st_hardneg`` provenance record (``format``, ``config``, ``stats``).
        repo_id: The dataset repository, for the usage snippet.
        columns: The dataset's columns.
        eci: Optional ECI summary (``ECIResult.to_dict()``); omitted from the card when ``None``.
        histogram: Optional relative path of the hardness histogram image in the repository.
        license / source_datasets: Card metadata.
        has_corpus: The repository also holds ``corpus``/``queries`` configs (ids layout).
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    stats, config, layout = record["stats"], record["config"], record["format"]
    card_data = DatasetCardData(
        license=license, task_categories=["sentence-similarity", "text-retrieval"],
        tags=["sentence-transformers", "hard-negatives", "st-hardneg", layout],
        size_categories=[_size_category(stats["output_rows"])], source_datasets=source_datasets,
        pretty_name=f"{repo_id.split('/')[-1]} (hard negatives)",
    )
    return DatasetCard.from_template(
        card_data, template_path=str(TEMPLATES / "dataset_card_template.md"), repo_id=repo_id, layout=layout,
        layout_columns=", ".join(columns), loss=LOSS_FOR_LAYOUT.get(layout, "MultipleNegativesRankingLoss"),
        stats=stats, config=config, eci=eci, histogram=histogram, has_corpus=has_corpus,
    )


def record_mining_in_card(model: Any, lines: list[str] | None = None, *, config: dict | None = None,
                          eci: dict | None = None, eval_results: dict | None = None,
                          dataset_repo_id: str | None = None) -> Path:
    """Add a "Hard Negatives" section to ``model``'s own card template; return the extended template.

    The section (``model_cards/model_card_section.md``) is rendered now and inserted at the top of
    "Training Details" in sentence-transformers' template; calling again replaces it.
    Adds the ``hard-negatives`` and ``st-hardneg`` tags and the NV-Retriever citation.
    """
    import jinja2

    section = jinja2.Template((TEMPLATES / "model_card_section.md").read_text(encoding="utf-8")).render(
        lines=lines or [], config=config, eci=eci, eval_results=eval_results, dataset_repo_id=dataset_repo_id)
    card = model.model_card_data
    base = Path(card.template_path).read_text(encoding="utf-8")
    if _MARKER in base:  # extended before: replace our section only
        start = base.index(_MARKER)
        base = base[:start] + base[base.index(_MARKER, start + 1) + len(_MARKER):]
    block = f"{_MARKER}\n{{% raw %}}{section}{{% endraw %}}\n{_MARKER}\n\n"
    text = base.replace(_ANCHOR, _ANCHOR + "\n" + block, 1) if _ANCHOR in base else base + "\n" + block
    path = Path(tempfile.mkdtemp(prefix="st_hardneg_card_")) / "model_card_template.md"
    path.write_text(text, encoding="utf-8")
    card.template_path = path
    # sentence-transformers re-saves the README it loaded unless the model was trained by its trainer;
    # a model carrying mining provenance needs the generated card, so drop the loaded text.
    if hasattr(model, "_model_card_text"):
        model._model_card_text = None
    card.add_tags(["hard-negatives", "st-hardneg"])
    card.citations["NV-Retriever"] = NV_RETRIEVER_BIBTEX
    return path
