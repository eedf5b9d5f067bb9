"""Publishing to the Hugging Face Hub: mined datasets and fine-tuned retrievers, with honest cards.

Everything goes through the unmodified clients (``datasets.Dataset.push_to_hub``,
``SentenceTransformer.push_to_hub``, ``huggingface_hub.HfApi``), so ``HF_ENDPOINT`` points it at a
self-hosted Hub and tokens come from the usual places (``HF_TOKEN``, ``huggingface-cli login``).
Nothing local is modified by a push; a failed push raises :class:`HubPushError` and can be retried.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class HubPushError(RuntimeError):
    """A push failed (server unreachable, auth refused, interrupted); local files are untouched."""


def _call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except HubPushError:
        raise
    except Exception as exc:  # huggingface_hub / requests / httpx errors all end here
        raise HubPushError(f"{what} failed: {type(exc).__name__}: {exc}. Nothing local was changed; "
                           "retry the push once the cause is fixed.") from exc


def push_dataset(
    path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
    corpus: dict[str, str] | None = None,
    queries: dict[str, str] | None = None,
    eci: Any = None,
    license: str | None = None,
    source_datasets: list[str] | None = None,
    commit_message: str | None = None,
) -> str:
    """Push a dataset written by ``st-hardneg mine`` (or ``MiningResult.save``) with its card.

    The rows go up with ``Dataset.push_to_hub`` (so plain ``datasets.load_dataset(repo_id)``
    loads them); the card (``model_cards/dataset_card_template.md``) records the mining
    configuration, statistics, ECI when given, a hardness histogram (``assets/hardness.png``) and
    a usage snippet. An existing repository is updated, not clobbered.

    Args:
        path: Folder written by ``MiningResult.save`` (holds ``st_hardneg.json``).
        repo_id: ``user/name`` of the dataset repository.
        private: Create the repository as private (the default).
        revision: Branch to push to (created from main when missing).
        create_pr: Open a pull request instead of committing to the branch.
        token: Hub token (default: huggingface_hub's usual lookup). Never written anywhere.
        corpus / queries: For the ``ids`` layout: id-to-text maps pushed as ``corpus``/``queries`` configs.
        eci: An :class:`~st_hardneg.eci.ECIResult` (or its ``to_dict()``) to put on the card.
        license / source_datasets: Card metadata.
        commit_message: Message of the data commit.

    Returns:
        The revision that now holds the dataset (the branch, or ``refs/pr/N``).

    Example::

        push_dataset("scifact-hn", "me/scifact-hard-negatives", eci=eci_score(ds, model))
    """
    import datasets
    from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi

    from .cards import render_dataset_card
    from .plots import hardness_png
    from .result import load_mined

    dataset, record = load_mined(path)
    api = HfApi(token=token)
    _call("creating the repository", api.create_repo, repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision and revision != "main" and not create_pr:
        _call(f"creating branch {revision!r}", api.create_branch, repo_id, branch=revision, repo_type="dataset",
              exist_ok=True)
    info = _call("uploading the rows", dataset.push_to_hub, repo_id, private=private, token=token, revision=revision,
                 create_pr=create_pr, commit_message=commit_message or f"Upload {record['format']} hard negatives")
    pr_revision = getattr(info, "pr_revision", None)
    target = pr_revision or revision or "main"
    has_corpus = record["format"] == "ids" and corpus is not None and queries is not None
    operations = []
    histogram = None
    counts = record["stats"].get("hardness_histogram", {}).get("counts")
    png = None
    if counts and sum(counts):
        png = hardness_png(counts, record["stats"]["hardness_histogram"]["edges"],
                           relative_margin=record["config"]["filter"].get("relative_margin"))
    if png is not None:
        histogram = "assets/hardness.png"
        operations.append(CommitOperationAdd(path_in_repo=histogram, path_or_fileobj=png))
    eci_dict = eci.to_dict() if hasattr(eci, "to_dict") else eci
    card = render_dataset_card(record, repo_id, columns=dataset.column_names, eci=eci_dict, histogram=histogram,
                               license=license, source_datasets=source_datasets, has_corpus=has_corpus)
    # datasets wrote README.md with `configs`/`dataset_info` metadata that load_dataset needs: keep it.
    if _has_readme(api, repo_id, target):
        readme = _call("reading the dataset card", api.hf_hub_download, repo_id, "README.md", repo_type="dataset",
                       revision=target)
        merged = DatasetCard(Path(readme).read_text(encoding="utf-8")).data.to_dict()
        merged.update({k: v for k, v in card.data.to_dict().items() if v is not None})
        card = DatasetCard(f"---\n{_yaml(merged)}---\n{card.text}")
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
    # One commit for card and image; it opens the pull request when the data push did not (unchanged data).
    commit = _call("uploading the dataset card", api.create_commit, repo_id, operations, repo_type="dataset",
                   revision=target, create_pr=create_pr and not pr_revision,
                   commit_message="Update dataset card (st-hardneg)")
    target = pr_revision or getattr(commit, "pr_revision", None) or target
    if create_pr and not target.startswith("refs/pr/"):
        logger.info("%s: nothing changed, so no pull request was opened; %s already holds this dataset", repo_id, target)
    if has_corpus:
        for name, mapping in (("corpus", corpus), ("queries", queries)):
            table = datasets.Dataset.from_dict({"_id": list(mapping), "text": list(mapping.values())})
            _call(f"uploading the {name} config", table.push_to_hub, repo_id, config_name=name, token=token,
                  revision=target, private=private)
    logger.info("pushed %d rows to %s (revision %s)", len(dataset), repo_id, target)
    return target


def _has_readme(api: Any, repo_id: str, revision: str) -> bool:
    try:
        return "README.md" in api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
    except Exception:  # an empty repository has no tree yet
        return False


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def push_model(
    model: Any,
    repo_id: str,
    *,
    dataset_repo_id: str | None = None,
    mined: str | os.PathLike | None = None,
    eci: Any = None,
    eval_results: dict | None = None,
    private: bool = True,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
) -> str:
    """Push a fine-tuned SentenceTransformer with its own card plus the mining provenance.

    Args:
        model: A SentenceTransformer or the folder of a saved one.
        repo_id: ``user/name`` of the model repository.
        dataset_repo_id: The mined dataset it was trained on (linked from the card).
        mined: Folder written by ``st-hardneg mine``: its configuration goes on the card.
        eci: ECI of the training negatives (``ECIResult`` or dict).
        eval_results: ``{name: {"ndcg@10": .., "recall@100": ..}}`` measured after training.
        private / revision / create_pr / token: As in :func:`push_dataset`.

    Returns:
        The URL of the commit, as ``SentenceTransformer.push_to_hub`` returns it.
    """
    from huggingface_hub import HfApi

    from .cards import record_mining_in_card
    from .models import load_model
    from .result import load_mined

    if isinstance(model, (str, os.PathLike)):
        model = load_model(str(model))
    config = load_mined(mined)[1]["config"] if mined is not None else None
    eci_dict = eci.to_dict() if hasattr(eci, "to_dict") else eci
    record_mining_in_card(model, config=config, eci=eci_dict, eval_results=eval_results, dataset_repo_id=dataset_repo_id)
    if revision and revision != "main" and not create_pr:
        api = HfApi(token=token)
        _call("creating the repository", api.create_repo, repo_id, private=private, exist_ok=True)
        _call(f"creating branch {revision!r}", api.create_branch, repo_id, branch=revision, exist_ok=True)
    return _call("pushing the model", model.push_to_hub, repo_id, token=token, private=private, exist_ok=True,
                 replace_model_card=True, train_datasets=[dataset_repo_id] if dataset_repo_id else None,
                 revision=revision, create_pr=create_pr)


def load_resolved(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Any:
    """Load an ``ids``-layout dataset from the Hub and resolve it against its ``corpus``/``queries`` configs."""
    import datasets

    from .formats import resolve_ids

    ids = datasets.load_dataset(repo_id, split="train", revision=revision, token=token)
    corpus = datasets.load_dataset(repo_id, "corpus", split="train", revision=revision, token=token)
    queries = datasets.load_dataset(repo_id, "queries", split="train", revision=revision, token=token)
    return resolve_ids(ids, corpus, queries)


def default_corpus_maps(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, str]]:
    """(corpus, queries) id-to-text maps of the BEIR folder a mined dataset came from (for ``ids`` pushes)."""
    from .beir import load_beir
    from .result import load_mined

    source = load_mined(path)[1]["config"]["data"]["source"]
    if not source.startswith("beir:"):
        raise ValueError(f"{path}: mined from {source!r}, not a BEIR folder; pass corpus= and queries= explicitly")
    folder, _, split = source[len("beir:"):].rpartition("#")
    data = load_beir(Path(folder), split)
    return dict(zip(data.corpus_ids, data.corpus_texts)), dict(zip(data.query_ids, data.query_texts))
