"""Cards: dataset cards for mined datasets, and mining provenance inside a model's own card.

Templates live in the top-level ``model_cards/`` folder (shipped inside the package) and are
rendered by huggingface_hub (``DatasetCard.from_template``) or, for models, inserted into
sentence-transformers' own card template (extended, never replaced) before it renders.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
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


# An absolute path (POSIX, ~ or a Windows drive) of two or more parts; group 1 is its last part. Not
# preceded by a word character, dot or slash, so relative paths, repo ids and URLs are left alone.
_ABSOLUTE_PATH = re.compile(r"(?<![\w./~\\-])(?:~|[A-Za-z]:)?(?:[/\\][^\s/\\\[\]()<>,;'\"`|]+)*"
                            r"[/\\]([^\s/\\\[\]()<>,;'\"`|]+)")


def public(value: Any) -> Any:
    """``value`` (a string, or dicts and lists of them) with every absolute local path cut to its last part.

    Cards are published: a machine path says nothing to readers and shows the author's file layout.
    Provenance written by current versions holds no paths; this also covers older sidecars and
    names passed in by users (an ECI scorer loaded from a folder, say).
    """
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(lambda m: m.group(1), value)
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(public(v) for v in value)
    return value


def hub_endpoint() -> str:
    """The Hub the links on cards point to: ``HF_ENDPOINT`` (a self-hosted Hub) or huggingface.co."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


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

    stats, config, layout = record["stats"], public(record["config"]), record["format"]
    card_data = DatasetCardData(
        license=license, task_categories=["sentence-similarity", "text-retrieval"],
        tags=["sentence-transformers", "hard-negatives", "st-hardneg", layout],
        size_categories=[_size_category(stats["output_rows"])], source_datasets=source_datasets,
        pretty_name=f"{repo_id.split('/')[-1]} (hard negatives)",
    )
    return DatasetCard.from_template(
        card_data, template_path=str(TEMPLATES / "dataset_card_template.md"), repo_id=repo_id, layout=layout,
        layout_columns=", ".join(columns), loss=LOSS_FOR_LAYOUT.get(layout, "MultipleNegativesRankingLoss"),
        stats=stats, config=config, eci=public(eci), histogram=histogram, has_corpus=has_corpus,
    )


def record_mining_in_card(model: Any, lines: list[str] | None = None, *, config: dict | None = None,
                          eci: dict | None = None, eval_results: dict | None = None,
                          dataset_repo_id: str | None = None, repo_id: str | None = None) -> Path:
    """Add a "Hard Negatives" section to ``model``'s own card template; return the extended template.

    The section (``model_cards/model_card_section.md``) is rendered now and inserted at the top of
    "Training Details" in sentence-transformers' template; calling again replaces it.
    Adds the ``hard-negatives`` and ``st-hardneg`` tags, the NV-Retriever citation and, with
    ``dataset_repo_id``, that dataset to the card's ``datasets:`` metadata. The extended template is
    written to a new temporary folder, which stays while the model may be saved; see
    :func:`mining_recorded` for a scope that removes it.

    Args:
        model: A SentenceTransformer (anything with sentence-transformers' ``model_card_data``).
        lines: Free-form bullet lines for the section (default: the lines recorded before, e.g. the
            ``MiningDataCollator``'s, so a later ``push_model`` keeps them).
        config: The mining configuration (``record["config"]`` of :func:`~st_hardneg.result.load_mined`).
        eci: ECI summary (``ECIResult.to_dict()``).
        eval_results: ``{name: {"ndcg@10": .., "recall@100": ..}}``.
        dataset_repo_id: The mined dataset on the Hub, linked from the section and the metadata.
        repo_id: The model's own repository (named in a Mafin model's loading instructions).
    """
    import jinja2

    card = model.model_card_data
    if lines is None:
        lines = getattr(card, "st_hardneg_lines", None) or []
    card.st_hardneg_lines = list(lines)
    section = jinja2.Template((TEMPLATES / "model_card_section.md").read_text(encoding="utf-8")).render(
        lines=public(lines), config=public(config), eci=public(eci), eval_results=eval_results,
        dataset_repo_id=dataset_repo_id, endpoint=hub_endpoint(), mafin=mafin_info(model),
        repo_id=repo_id or "USER/MODEL")
    base = Path(card.template_path).read_text(encoding="utf-8")
    if _MARKER in base:  # extended before: replace our section only
        start = base.index(_MARKER)
        base = base[:start] + base[base.index(_MARKER, start + 1) + len(_MARKER):]
    block = f"{_MARKER}\n{{% raw %}}{section}{{% endraw %}}\n{_MARKER}\n\n"
    text = base.replace(_ANCHOR, _ANCHOR + "\n" + block, 1) if _ANCHOR in base else base + "\n" + block
    path = Path(tempfile.mkdtemp(prefix="st_hardneg_card_")) / "model_card_template.md"
    path.write_text(text, encoding="utf-8")
    card.template_path = path
    # The template must outlive this call (the collator records it before training, the card renders
    # at save time): the folder goes when the card data does, or at exit, never left in the temp dir.
    weakref.finalize(card, shutil.rmtree, path.parent, True)
    # sentence-transformers re-saves the README it loaded unless the model was trained by its trainer;
    # a model carrying mining provenance needs the generated card, so drop the loaded text.
    if hasattr(model, "_model_card_text"):
        model._model_card_text = None
    card.add_tags(["hard-negatives", "st-hardneg"])
    card.citations["NV-Retriever"] = NV_RETRIEVER_BIBTEX
    # `datasets:` in the YAML is what links a model to its data on the Hub. sentence-transformers fills
    # it only from trainer datasets it could look up (push_to_hub's train_datasets is ignored since 5.x).
    if dataset_repo_id and dataset_repo_id not in card.datasets:
        card.datasets.append(dataset_repo_id)
    return path


def mafin_info(model: Any) -> dict | None:
    """What a Mafin model's card must say (its black box, sizes and λ); None for any other model."""
    from .mafin.model import MafinCombine  # torch and sentence-transformers are loaded: the model is one

    last = model[-1] if hasattr(model, "__getitem__") and len(model) else None
    if not isinstance(last, MafinCombine):
        return None
    return {"black_box": last.black_box_name, "black_box_dim": last.black_box_dim, "small_dim": last.small_dim,
            "weight": last.weight}


@contextmanager
def mining_recorded(model: Any, **kwargs: Any) -> Iterator[Path]:
    """:func:`record_mining_in_card` for the duration of a ``with`` block (a save or a push).

    On exit the model's card template is the one it had before and the temporary template is
    deleted, so repeated pushes leave nothing behind in the temp folder.

    Args:
        model: A SentenceTransformer.
        **kwargs: As for :func:`record_mining_in_card`.
    """
    card = model.model_card_data
    template = card.template_path
    path = record_mining_in_card(model, **kwargs)
    try:
        yield path
    finally:
        card.template_path = template
        shutil.rmtree(path.parent, ignore_errors=True)
