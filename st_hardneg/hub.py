"""Publishing to the Hugging Face Hub: mined datasets and fine-tuned retrievers, with honest cards.

Everything goes through the unmodified clients (``datasets.Dataset.push_to_hub``,
``SentenceTransformer.push_to_hub``, ``huggingface_hub.HfApi``), so ``HF_ENDPOINT`` points it at a
self-hosted Hub and tokens come from the usual places (``HF_TOKEN``, ``hf auth login``).
Nothing local is modified by a push. When the Hub or the network fails, the push raises
:class:`HubPushError` (the huggingface_hub / httpx error is its ``__cause__``); anything else, such
as a wrong argument, is raised as it is.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Loggers that print request URLs: httpx (and its fork httpx2, which huggingface_hub 2.x uses) at
# INFO, huggingface_hub's HTTP helpers at DEBUG and in retry warnings.
REQUEST_LOGGERS = ("httpx", "httpx2", "huggingface_hub.utils._http")
_QUERY_STRING = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s#\"'<>]*")


class HubPushError(RuntimeError):
    """A push failed on the Hub's side or on the way there; local files are untouched.

    Attributes:
        retryable: The failure is a network or server one (unreachable, timeout, 408/429/5xx), so
            the same push may succeed later.
    """

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def redact_url(text: str) -> str:
    """``text`` with the query string of every URL in it replaced by ``?<redacted>``.

    Presigned upload URLs carry their credential in the query string (``X-Amz-Signature=...``).
    """
    return _QUERY_STRING.sub(r"\1?<redacted>", text)


class RedactQueryStrings(logging.Filter):
    """A logging filter that removes the query strings of the URLs in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = redact_url(message), None
        return True


def configure_request_logging(verbose: bool = False) -> None:
    """Hide HTTP request logs, or (``verbose``) show them, always without URL query strings.

    httpx logs every request at INFO, signed upload URLs included; this sets those loggers to
    WARNING (or INFO) and installs :class:`RedactQueryStrings` on them (once).

    Args:
        verbose: Show one line per request.
    """
    for name in REQUEST_LOGGERS:
        request_logger = logging.getLogger(name)
        request_logger.setLevel(logging.INFO if verbose else logging.WARNING)
        if not any(isinstance(f, RedactQueryStrings) for f in request_logger.filters):
            request_logger.addFilter(RedactQueryStrings())


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(__import__(module).TransportError)  # connect, read, write, timeouts, protocol
        except ImportError:
            pass
    return tuple(errors)


def _hub_error(what: str, exc: BaseException) -> HubPushError | None:
    """The :class:`HubPushError` for a failure of the Hub or the network; None for anything else."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    endpoint = constants.ENDPOINT
    retry = "Nothing local was changed; retry the push"
    if isinstance(exc, OfflineModeIsEnabled):
        return HubPushError(f"{what} failed: offline mode is on (HF_HUB_OFFLINE); unset it to push")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        detail = redact_url(exc.server_message or str(exc).strip().splitlines()[0])
        if status == 401:
            return HubPushError(f"{what} failed: {endpoint} refused the token (401 Unauthorized: {detail}). "
                                "Set HF_TOKEN or run `hf auth login` with a token that can write there.")
        if status == 403:
            return HubPushError(f"{what} failed: the token may not do this (403 Forbidden: {detail}). "
                                "Use a token with write access (HF_TOKEN or `hf auth login`).")
        if status is not None and (status in (408, 429) or status >= 500):
            return HubPushError(f"{what} failed: {endpoint} answered {status} ({detail}). {retry}.", retryable=True)
        return HubPushError(f"{what} failed: {type(exc).__name__} ({status}): {detail}")
    if isinstance(exc, LocalEntryNotFoundError):  # hf_hub_download could not reach the Hub, nothing was cached
        return HubPushError(f"{what} failed: the Hub at {endpoint} did not answer ({redact_url(str(exc))}). "
                            f"{retry} once it is reachable.", retryable=True)
    if isinstance(exc, _network_errors()):
        return HubPushError(f"{what} failed: cannot reach the Hub at {endpoint} ({type(exc).__name__}: "
                            f"{redact_url(str(exc))}). {retry} once it is reachable.", retryable=True)
    return None


def _call(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, with Hub and network failures raised as :class:`HubPushError`."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        error = _hub_error(what, exc)
        if error is None:  # not the Hub's doing (a bug, a wrong argument): keep it as it is
            raise
        raise error from exc


def _prepare_repo(api: Any, repo_id: str, repo_type: str, private: bool | None) -> bool:
    """Create the repository (private unless ``private`` is False), or set an existing one's
    visibility when ``private`` is given; return whether it is private."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        current = api.repo_info(repo_id, repo_type=repo_type).private
    except RepositoryNotFoundError:
        api.create_repo(repo_id, repo_type=repo_type, private=private is not False, exist_ok=True)
        return private is not False
    if private is not None and current != private:
        api.update_repo_settings(repo_id, repo_type=repo_type, private=private)
        logger.info("%s %s is now %s", repo_type, repo_id, "private" if private else "public")
        return private
    return bool(current)


def push_dataset(
    path: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
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
    loads them), then the ``corpus``/``queries`` configs of an ``ids`` dataset, then the card
    (``model_cards/dataset_card_template.md``: mining configuration, statistics, ECI when given, a
    hardness histogram ``assets/hardness.png`` and a usage snippet). The card goes last, so an
    interrupted push never leaves a card describing data that is not there. An existing repository
    is updated, not clobbered; pushing another layout over it replaces the rows and their schema.

    Args:
        path: Folder written by ``MiningResult.save`` (holds ``st_hardneg.json``).
        repo_id: ``user/name`` of the dataset repository.
        private: None (default): a new repository is private, an existing one keeps its
            visibility. True / False: make it private / public, an existing one included.
        revision: Branch to push to (created from main when missing).
        create_pr: Open a pull request instead of committing to the branch.
        token: Hub token (default: huggingface_hub's usual lookup). Never written anywhere.
        corpus: For the ``ids`` layout: corpus id-to-text map, pushed as the ``corpus`` config
            (see :func:`default_corpus_maps`); every id in the rows must be in it.
        queries: Likewise, query id-to-text map, pushed as the ``queries`` config.
        eci: An :class:`~st_hardneg.eci.ECIResult` (or its ``to_dict()``) to put on the card.
        license: Licence identifier for the card metadata, e.g. ``"cc-by-4.0"``.
        source_datasets: Hub ids of the source data, for the card metadata.
        commit_message: Message of the data commit.

    Returns:
        The revision that now holds the dataset (the branch, or ``refs/pr/N``).

    Raises:
        HubPushError: The Hub refused or could not be reached (``retryable`` tells which).
        ValueError: ``corpus``/``queries`` given for another layout, only one of them, or missing ids.

    Example::

        push_dataset("scifact-hn", "me/scifact-hard-negatives", eci=eci_score(ds, model))
    """
    import datasets
    from huggingface_hub import CommitOperationAdd, HfApi

    from .cards import render_dataset_card
    from .plots import hardness_png
    from .result import load_mined

    dataset, record = load_mined(path)
    has_corpus = corpus is not None or queries is not None
    if has_corpus:
        _check_corpus_maps(dataset, record["format"], corpus, queries)
    elif record["format"] == "ids":
        logger.warning("%s: pushing an ids dataset without its corpus and queries: load_resolved(%r) will not be "
                       "able to resolve it; pass corpus= and queries= (CLI: --with-corpus FOLDER)", path, repo_id)

    api = HfApi(token=token)
    private = _call("preparing the repository", _prepare_repo, api, repo_id, "dataset", private)
    if revision and revision != "main" and not create_pr:
        _call(f"creating branch {revision!r}", api.create_branch, repo_id, branch=revision, repo_type="dataset",
              exist_ok=True)
    base = revision or "main"
    if not create_pr:  # a pull request's stale card is fixed by the card commit instead
        _forget_stale_schema(api, repo_id, base, dataset.features)

    pr: str | None = None  # the pull request the first changing commit opened

    def push_table(what: str, table: Any, **kwargs: Any) -> None:
        nonlocal pr
        info = _call(f"uploading the {what}", table.push_to_hub, repo_id, private=private, token=token,
                     revision=pr or revision, create_pr=create_pr and pr is None, **kwargs)
        pr = pr or getattr(info, "pr_revision", None)

    push_table("rows", dataset, commit_message=commit_message or f"Upload {record['format']} hard negatives")
    if has_corpus:
        for name, mapping in (("corpus", corpus), ("queries", queries)):
            table = datasets.Dataset.from_dict({"_id": list(mapping), "text": list(mapping.values())})
            push_table(f"{name} config", table, config_name=name, commit_message=f"Upload the {name} config")

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
    target = pr or base
    # datasets wrote README.md with `configs`/`dataset_info` metadata that load_dataset needs: keep it.
    old = _read_card(api, repo_id, target)
    if old is not None:
        metadata = old.data.to_dict()
        _drop_stale_info(metadata, dataset.features)
        metadata.update({k: v for k, v in card.data.to_dict().items() if v is not None})
        card = f"---\n{_yaml(metadata)}---\n{card.text}"
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
    # One commit for card and image; it opens the pull request when the data pushes did not (unchanged data).
    commit = _call("uploading the dataset card", api.create_commit, repo_id, operations, repo_type="dataset",
                   revision=target, create_pr=create_pr and pr is None,
                   commit_message="Update dataset card (st-hardneg)")
    target = pr or getattr(commit, "pr_revision", None) or target
    if create_pr and not target.startswith("refs/pr/"):
        logger.info("%s: nothing changed, so no pull request was opened; %s already holds this dataset", repo_id, target)
    logger.info("pushed %d rows to %s (revision %s)", len(dataset), repo_id, target)
    return target


def _check_corpus_maps(dataset: Any, layout: str, corpus: dict | None, queries: dict | None) -> None:
    """Refuse corpus/queries maps that cannot resolve ``dataset``, before anything is pushed."""
    if layout != "ids":
        raise ValueError(f"corpus= and queries= are for the ids layout; this dataset is {layout!r}")
    if corpus is None or queries is None:
        raise ValueError("pass both corpus= and queries= (an ids dataset needs both to be resolved)")
    missing_queries = set(dataset["query_id"]) - queries.keys()
    missing_docs = ({*dataset["positive_id"], *(n for row in dataset["negative_ids"] for n in row)}
                    - corpus.keys())
    if missing_queries or missing_docs:
        example = min(missing_queries or missing_docs)
        raise ValueError(f"the corpus/queries maps lack {len(missing_queries)} query ids and {len(missing_docs)} "
                         f"corpus ids of the rows (e.g. {example!r}); were they read from the data that was mined?")


def _read_card(api: Any, repo_id: str, revision: str) -> Any:
    """The ``DatasetCard`` at ``revision``; None when there is no README.md."""
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    def download() -> str | None:
        try:
            return api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision)
        except LocalEntryNotFoundError:  # the Hub could not be asked (network, 5xx): not "no card"
            raise
        except EntryNotFoundError:  # a new repository has no card yet
            return None

    readme = _call("reading the dataset card", download)
    return None if readme is None else DatasetCard(Path(readme).read_text(encoding="utf-8"))


def _drop_stale_info(metadata: dict, features: Any) -> bool:
    """Remove the default config's ``dataset_info`` from card ``metadata`` if it records other ``features``.

    When a split is replaced, ``datasets`` keeps the features the card recorded, so rows of a new
    layout would be read with the old schema (``CastError``). Without the entry, ``load_dataset``
    takes the schema from the data files, and the next ``push_to_hub`` records it afresh.
    Returns whether an entry was removed.
    """
    infos = metadata.get("dataset_info")
    entries = infos if isinstance(infos, list) else [infos] if isinstance(infos, dict) else []
    wanted = features._to_yaml_list()
    kept = [e for e in entries if e.get("config_name", "default") != "default" or e.get("features") == wanted]
    if len(kept) == len(entries):
        return False
    if not kept:
        del metadata["dataset_info"]
    else:
        metadata["dataset_info"] = kept if isinstance(infos, list) and len(kept) > 1 else kept[0]
    return True


def _forget_stale_schema(api: Any, repo_id: str, revision: str, features: Any) -> None:
    """Before new rows replace old ones of another layout, commit the card without the old schema."""
    from huggingface_hub import CommitOperationAdd

    card = _read_card(api, repo_id, revision)
    metadata = card.data.to_dict() if card is not None else {}
    if not _drop_stale_info(metadata, features):
        return
    readme = f"---\n{_yaml(metadata)}---\n{card.text}"
    logger.info("%s: the rows change layout; dropping the old schema from the card first", repo_id)
    _call("updating the dataset card", api.create_commit, repo_id,
          [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode("utf-8"))],
          repo_type="dataset", revision=revision, commit_message="Drop the schema of the previous layout (st-hardneg)")


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
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    token: str | None = None,
) -> str:
    """Push a fine-tuned SentenceTransformer with its own card plus the mining provenance.

    The card is sentence-transformers' own, with a "Hard Negatives" section and, with
    ``dataset_repo_id``, that dataset in its ``datasets:`` metadata. The model's card template is
    left as it was.

    Args:
        model: A SentenceTransformer or the folder of a saved one. A Mafin model
            (:class:`~st_hardneg.mafin.MafinModel`) is passed as the model, with its black box; its
            card says which black box it needs and how to supply it.
        repo_id: ``user/name`` of the model repository.
        dataset_repo_id: The mined dataset it was trained on (linked from the card).
        mined: Folder written by ``st-hardneg mine``: its configuration goes on the card.
        eci: ECI of the training negatives (``ECIResult`` or dict).
        eval_results: ``{name: {"ndcg@10": .., "recall@100": ..}}`` measured after training.
        private: As in :func:`push_dataset`: None keeps an existing repository's visibility and
            creates a new one private.
        revision: Branch to push to (created from main when missing).
        create_pr: Open a pull request instead of committing to the branch.
        token: Hub token (default: huggingface_hub's usual lookup). Never written anywhere.

    Returns:
        The URL of the commit, as ``SentenceTransformer.push_to_hub`` returns it.

    Raises:
        HubPushError: The Hub refused or could not be reached (``retryable`` tells which).
    """
    from huggingface_hub import HfApi

    from .cards import mining_recorded
    from .models import load_model
    from .result import load_mined

    if isinstance(model, (str, os.PathLike)):
        model = load_model(str(model))
    config = load_mined(mined)[1]["config"] if mined is not None else None
    eci_dict = eci.to_dict() if hasattr(eci, "to_dict") else eci
    api = HfApi(token=token)
    private = _call("preparing the repository", _prepare_repo, api, repo_id, "model", private)
    if revision and revision != "main" and not create_pr:
        _call(f"creating branch {revision!r}", api.create_branch, repo_id, branch=revision, exist_ok=True)
    with mining_recorded(model, config=config, eci=eci_dict, eval_results=eval_results,
                         dataset_repo_id=dataset_repo_id, repo_id=repo_id):
        return _call("pushing the model", model.push_to_hub, repo_id, token=token, private=private, exist_ok=True,
                     replace_model_card=True, revision=revision, create_pr=create_pr)


def load_resolved(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Any:
    """Load an ``ids``-layout dataset from the Hub and resolve it against its ``corpus``/``queries`` configs.

    Args:
        repo_id: The dataset repository, pushed by :func:`push_dataset` with ``corpus``/``queries``.
        revision: Branch, tag, commit or ``refs/pr/N``.
        token: Hub token for a private repository.

    Returns:
        A ``datasets.Dataset`` in the ``n-tuple`` layout (anchor, positive, negative_1, ...).

    Raises:
        ValueError: The repository has no ``corpus`` or ``queries`` config.
    """
    import datasets

    from .formats import resolve_ids

    configs = datasets.get_dataset_config_names(repo_id, revision=revision, token=token)
    missing = [name for name in ("corpus", "queries") if name not in configs]
    if missing:
        raise ValueError(f"{repo_id}: no {' or '.join(missing)} config to resolve the ids against; push it again "
                         "with corpus= and queries= (CLI: st-hardneg push dataset --with-corpus FOLDER)")
    ids = datasets.load_dataset(repo_id, split="train", revision=revision, token=token)
    corpus = datasets.load_dataset(repo_id, "corpus", split="train", revision=revision, token=token)
    queries = datasets.load_dataset(repo_id, "queries", split="train", revision=revision, token=token)
    return resolve_ids(ids, corpus, queries)


def default_corpus_maps(path: str | os.PathLike, *, data: str | os.PathLike,
                        split: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(corpus, queries) id-to-text maps of the BEIR data a mined dataset came from, for ``ids`` pushes.

    Args:
        path: Folder written by ``st-hardneg mine`` (its provenance names the qrels split).
        data: The BEIR folder (or Hub BEIR dataset) that was mined.
        split: Qrels split to read (default: the one recorded in the provenance, else ``train``).

    Returns:
        ``(corpus, queries)``, ready for :func:`push_dataset`.
    """
    from .beir import load_beir
    from .result import load_mined

    if split is None:  # sources read "beir:<name>@<hash>#<split>", possibly with a suffix such as "[slice]"
        recorded = re.search(r"#([\w.-]+)", str(load_mined(path)[1]["config"]["data"].get("source", "")))
        split = recorded.group(1) if recorded else "train"
    loaded = load_beir(data, split)
    return dict(zip(loaded.corpus_ids, loaded.corpus_texts)), dict(zip(loaded.query_ids, loaded.query_texts))
