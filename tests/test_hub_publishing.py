"""Publishing edge cases against the loopback Hub (tests/hub_server.py): re-pushes with another layout,
visibility, the model card's dataset link, local paths, request logs, interrupted pushes, error types,
temporary files."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import datasets
import httpx2
import pytest
from huggingface_hub import DatasetCard, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from st_hardneg import HubPushError, load_model, mine, push_dataset, push_model
from st_hardneg.hub import (
    REQUEST_LOGGERS,
    configure_request_logging,
    default_corpus_maps,
    load_resolved,
    redact_url,
)

from conftest import slice_data, write_beir

pytest_plugins = ["hub_server"]


@pytest.fixture(scope="module")
def local(scifact, cache_dir, tmp_path_factory):
    """Mined from a local BEIR folder with a model from a local folder: machine paths a card must not show."""
    root = tmp_path_factory.mktemp("local-sources")
    beir = root / "beir-scifact"
    write_beir(slice_data(scifact, 12, 450), beir)
    model_dir = root / "models" / "minilm"
    load_model(None, max_seq_length=128).save(str(model_dir))
    result = mine(str(beir), str(model_dir), num_negatives=2, cache_folder=cache_dir, verbose=False)
    result.save(root / "ntuple", "n-tuple")
    result.save(root / "ids", "ids")
    return root, result


@pytest.fixture
def request_log_levels():
    """Put the request loggers back as they were: their levels are process-wide."""
    saved = {name: logging.getLogger(name).level for name in REQUEST_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def card_metadata(repo_id: str, revision: str) -> dict:
    return DatasetCard(Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision))
                       .read_text(encoding="utf-8")).data.to_dict()


def columns(repo_id: str, revision: str) -> list[str]:
    return datasets.load_dataset(repo_id, split="train", revision=revision).column_names


# ---- 1. a re-push with another layout leaves a repository that loads --------------------------------

@pytest.mark.parametrize("where", ["main", "branch", "pr"])
def test_repush_with_another_layout_loads(hub, local, where):
    root, result = local
    repo = f"tester/relayout-{where}"
    revision = "dev" if where == "branch" else None
    ids = datasets.load_from_disk(str(root / "ids"))
    corpus, queries = default_corpus_maps(root / "ids", data=root / "beir-scifact")

    first = push_dataset(root / "ntuple", repo, revision=revision)
    assert card_metadata(repo, first).get("dataset_info")  # a plain push keeps the schema datasets recorded
    second = push_dataset(root / "ids", repo, revision=revision, create_pr=where == "pr", corpus=corpus,
                          queries=queries)
    assert second == (first if where != "pr" else "refs/pr/1")
    assert datasets.load_dataset(repo, split="train", revision=second).to_dict() == ids.to_dict()
    assert load_resolved(repo, revision=second).to_dict() == result.to_dataset("n-tuple").to_dict()
    if where != "pr":  # ... and back again
        push_dataset(root / "ntuple", repo, revision=revision)
        assert columns(repo, first) == datasets.load_from_disk(str(root / "ntuple")).column_names


# ---- 2. visibility ---------------------------------------------------------------------------------

def test_visibility_new_private_existing_kept_explicit_applied(hub, local, caplog):
    root, _ = local
    caplog.set_level(logging.INFO, logger="st_hardneg")
    push_dataset(root / "ntuple", "tester/vis")
    assert hub.repo("tester/vis", "dataset").private  # a new repository is private
    push_dataset(root / "ntuple", "tester/vis", private=False)
    assert not hub.repo("tester/vis", "dataset").private
    assert "dataset tester/vis is now public" in caplog.text
    assert "README.md" in HfApi(token=False).list_repo_files("tester/vis", repo_type="dataset")  # anonymous read
    push_dataset(root / "ntuple", "tester/vis")  # private=None keeps it as it is
    assert not hub.repo("tester/vis", "dataset").private
    push_dataset(root / "ntuple", "tester/vis", private=True)
    assert hub.repo("tester/vis", "dataset").private
    push_dataset(root / "ntuple", "tester/open", private=False)
    assert not hub.repo("tester/open", "dataset").private


# ---- 3, 4, 9. the model card links its dataset on this Hub; no local paths; no temp folders left ----

def test_model_push_links_dataset_publishes_no_local_path_and_cleans_up(hub, local, tmp_path, monkeypatch):
    root, _ = local
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    from st_hardneg.eci import eci_score

    corpus, queries = default_corpus_maps(root / "ids", data=root / "beir-scifact")
    eci = eci_score(datasets.load_from_disk(str(root / "ntuple")), str(root / "models" / "minilm"))
    push_dataset(root / "ids", "tester/local-ids", corpus=corpus, queries=queries, eci=eci)
    push_model(str(root / "models" / "minilm"), "tester/local-model", dataset_repo_id="tester/local-ids",
               mined=root / "ntuple", eci=eci, private=False)
    push_model(str(root / "models" / "minilm"), "tester/local-model", dataset_repo_id="tester/local-ids",
               mined=root / "ntuple", eci=eci)
    assert not list(temp.glob("st_hardneg_card_*"))

    card = ModelCard.load("tester/local-model")
    assert card.data.datasets == ["tester/local-ids"]
    assert f"({hub.url}/datasets/tester/local-ids)" in card.text
    assert "https://huggingface.co/datasets/tester/local-ids" not in card.text
    assert not hub.repo("tester/local-model").private  # the second push (private=None) kept it public

    machine = str(root).encode()
    for repo, kind in (("tester/local-ids", "dataset"), ("tester/local-model", "model")):
        for name, data in hub.files(repo, kind).items():
            assert machine not in data, f"{repo}/{name} holds a local path"


# ---- 5. request logs --------------------------------------------------------------------------------

def test_redact_url_drops_query_strings_only():
    line = 'HTTP Request: PUT https://s3.example/bucket/ab12?X-Amz-Signature=f00&X-Amz-Expires=900 "HTTP/1.1 200 OK"'
    assert redact_url(line) == 'HTTP Request: PUT https://s3.example/bucket/ab12?<redacted> "HTTP/1.1 200 OK"'
    assert redact_url("GET http://127.0.0.1:8080/api/whoami-v2 200") == "GET http://127.0.0.1:8080/api/whoami-v2 200"


def test_request_log_is_off_by_default_and_redacted_when_verbose(hub, local, caplog, request_log_levels):
    root, _ = local
    caplog.set_level(logging.INFO, logger="st_hardneg")
    configure_request_logging(verbose=False)
    push_dataset(root / "ntuple", "tester/quiet")
    assert "HTTP Request" not in caplog.text
    configure_request_logging(verbose=True)
    push_dataset(root / "ids", "tester/quiet")  # other rows: a parquet file goes up through a signed URL
    uploads = [r.getMessage() for r in caplog.records if "/lfs-upload/" in r.getMessage()]
    assert uploads and all("?<redacted>" in line for line in uploads)
    assert "X-Amz-Signature" not in caplog.text


# ---- 6. push order, and what an interrupted ids push leaves ----------------------------------------

def test_ids_push_without_corpus_warns_and_load_resolved_says_what_to_do(hub, local, caplog):
    root, _ = local
    push_dataset(root / "ids", "tester/bare-ids")
    assert "without its corpus and queries" in caplog.text
    with pytest.raises(ValueError, match=r"tester/bare-ids: no corpus or queries config .*--with-corpus"):
        load_resolved("tester/bare-ids")


def test_an_interrupted_ids_push_never_leaves_a_card_promising_missing_configs(hub, local):
    root, result = local
    corpus, queries = default_corpus_maps(root / "ids", data=root / "beir-scifact")
    # Commits: rows, corpus, queries, card. The card fails: what is there resolves, and is not yet described.
    hub.fail_next(1, status=500, match="/commit/", after=3)
    with pytest.raises(HubPushError, match="retry"):
        push_dataset(root / "ids", "tester/cut", corpus=corpus, queries=queries)
    assert "st-hardneg" not in card_metadata("tester/cut", "main").get("tags", [])
    assert load_resolved("tester/cut").to_dict() == result.to_dataset("n-tuple").to_dict()
    # The corpus fails: no card, and load_resolved says what is missing.
    hub.fail_next(1, status=500, match="/commit/", after=1)
    with pytest.raises(HubPushError, match="uploading the corpus config failed"):
        push_dataset(root / "ids", "tester/cut-early", corpus=corpus, queries=queries)
    assert "st-hardneg" not in card_metadata("tester/cut-early", "main").get("tags", [])
    with pytest.raises(ValueError, match="tester/cut-early: no corpus or queries config"):
        load_resolved("tester/cut-early")
    push_dataset(root / "ids", "tester/cut-early", corpus=corpus, queries=queries)  # the retry completes it
    assert "st-hardneg" in card_metadata("tester/cut-early", "main")["tags"]
    assert load_resolved("tester/cut-early").to_dict() == result.to_dataset("n-tuple").to_dict()


def test_corpus_maps_are_checked_before_anything_is_pushed(hub, local):
    root, _ = local
    corpus, queries = default_corpus_maps(root / "ids", data=root / "beir-scifact")
    with pytest.raises(ValueError, match="for the ids layout"):
        push_dataset(root / "ntuple", "tester/never", corpus=corpus, queries=queries)
    first = datasets.load_from_disk(str(root / "ids"))[0]["positive_id"]
    with pytest.raises(ValueError, match="lack 0 query ids and 1 corpus ids"):
        push_dataset(root / "ids", "tester/never", corpus={k: v for k, v in corpus.items() if k != first},
                     queries=queries)
    assert ("dataset", "tester/never") not in hub.repos


# ---- 8. errors keep their type; advice fits the cause -----------------------------------------------

def test_programming_errors_pass_through_unchanged(hub, local, monkeypatch):
    root, _ = local
    bug = TypeError("create_commit() got an unexpected keyword argument 'x'")

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(HfApi, "create_commit", broken)
    with pytest.raises(TypeError) as caught:
        push_dataset(root / "ntuple", "tester/bug")
    assert caught.value is bug


def test_refused_token_points_at_hf_token_and_keeps_the_http_error(hub, local):
    root, _ = local
    hub.refuse_auth()
    with pytest.raises(HubPushError, match=r"401.*Set HF_TOKEN or run `hf auth login`") as caught:
        push_dataset(root / "ntuple", "tester/auth")
    assert "retry" not in str(caught.value) and not caught.value.retryable
    assert isinstance(caught.value.__cause__, HfHubHTTPError)
    assert caught.value.__cause__.response.status_code == 401


def test_server_errors_advise_a_retry(hub, local):
    root, _ = local
    hub.fail_next(1, status=502, match="/commit/")
    with pytest.raises(HubPushError, match=f"{hub.url} answered 502.*retry the push") as caught:
        push_dataset(root / "ntuple", "tester/flaky")
    assert caught.value.retryable and isinstance(caught.value.__cause__, HfHubHTTPError)
    push_dataset(root / "ntuple", "tester/flaky")  # and the retry does succeed


def test_unreachable_hub_names_the_endpoint_and_advises_a_retry(hub, local):
    root, _ = local
    hub.stop()
    with pytest.raises(HubPushError, match=f"cannot reach the Hub at {hub.url}.*retry the push") as caught:
        push_dataset(root / "ntuple", "tester/down")
    assert caught.value.retryable and isinstance(caught.value.__cause__, httpx2.TransportError)
