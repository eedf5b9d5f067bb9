"""Publishing round trips against a Hub-compatible server on 127.0.0.1 (tests/hub_server.py)."""

import contextlib
import copy
import hashlib
import io
import logging

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard, HfApi, ModelCard

from st_hardneg import HubPushError, mine, push_dataset, push_model
from st_hardneg.eci import eci_score
from st_hardneg.hub import load_resolved

from conftest import slice_data

pytest_plugins = ["hub_server"]


@pytest.fixture(scope="module")
def mined(scifact, model, cache_dir, tmp_path_factory):
    result = mine(slice_data(scifact, 12, 450), model, num_negatives=2, cache_folder=cache_dir, verbose=False)
    out = tmp_path_factory.mktemp("mined")
    result.save(out / "ntuple", "n-tuple")
    result.save(out / "ids", "ids")
    data = result.data
    maps = dict(zip(data.corpus_ids, data.corpus_texts)), dict(zip(data.query_ids, data.query_texts))
    return out, result, maps


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dataset_round_trip_with_card_and_training(hub, mined, model, tmp_path):
    out, result, _ = mined
    eci = eci_score(datasets.load_from_disk(str(out / "ntuple")), model)
    assert push_dataset(out / "ntuple", "tester/scifact-hn", eci=eci, license="cc-by-4.0") == "main"
    loaded = datasets.load_dataset("tester/scifact-hn", split="train")
    assert loaded.to_dict() == datasets.load_from_disk(str(out / "ntuple")).to_dict()
    card = DatasetCard.load("tester/scifact-hn", repo_type="dataset")
    assert {"hard-negatives", "sentence-transformers"} <= set(card.data.tags) and card.data.license == "cc-by-4.0"
    assert card.data.to_dict().get("configs")  # datasets' own metadata survived our card
    assert "TopK-PercPos(0.95)" in card.text and f"| {eci.eci:.4f} |" in card.text
    files = HfApi().list_repo_files("tester/scifact-hn", repo_type="dataset")
    assert "assets/hardness.png" in files
    # ... and it trains at once.
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    student = copy.deepcopy(model)
    student.max_seq_length = 32
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4,
                                                report_to=[], save_strategy="no", use_cpu=True)
    SentenceTransformerTrainer(model=student, args=args, train_dataset=loaded,
                               loss=losses.MultipleNegativesRankingLoss(student)).train()


def test_ids_layout_resolves_against_its_corpus_config(hub, mined):
    out, result, (corpus, queries) = mined
    push_dataset(out / "ids", "tester/scifact-ids", corpus=corpus, queries=queries)
    resolved = load_resolved("tester/scifact-ids")
    assert resolved.to_dict() == result.to_dataset("n-tuple").to_dict()
    assert "resolve_ids" in DatasetCard.load("tester/scifact-ids", repo_type="dataset").text


def test_model_round_trip_with_provenance(hub, mined, model):
    out, _, _ = mined
    student = copy.deepcopy(model)
    push_model(student, "tester/minilm-hn", dataset_repo_id="tester/scifact-hn", mined=out / "ntuple",
               eval_results={"scifact-test": {"ndcg@10": 0.66, "recall@100": 0.93}})
    from sentence_transformers import SentenceTransformer

    back = SentenceTransformer("tester/minilm-hn")
    texts = ["hard negatives", "a claim about cells"]
    assert np.allclose(back.encode(texts), student.encode(texts), atol=1e-5)
    card = ModelCard.load("tester/minilm-hn")
    assert "### Hard Negatives" in card.text and "datasets/tester/scifact-hn" in card.text
    assert "TopK-PercPos(0.95)" in card.text and "| scifact-test | 0.6600 |" in card.text


def test_private_branches_prs_and_updates(hub, mined):
    out, _, _ = mined
    push_dataset(out / "ntuple", "tester/priv")
    with pytest.raises(Exception, match="404|not found|Repository Not Found"):
        HfApi(token=False).list_repo_files("tester/priv", repo_type="dataset")
    HfApi().upload_file(path_or_fileobj=b"keep me", path_in_repo="notes.txt", repo_id="tester/priv", repo_type="dataset")
    push_dataset(out / "ntuple", "tester/priv")  # re-push: updates, does not clobber
    assert "notes.txt" in HfApi().list_repo_files("tester/priv", repo_type="dataset")
    assert push_dataset(out / "ids", "tester/branchy", revision="dev") == "dev"
    assert datasets.load_dataset("tester/branchy", split="train", revision="dev").column_names[0] == "query_id"
    assert "README.md" not in HfApi().list_repo_files("tester/branchy", repo_type="dataset")  # main untouched
    pr = push_dataset(out / "ids", "tester/priv", create_pr=True)  # a change, so a pull request opens
    assert pr.startswith("refs/pr/")
    assert "README.md" in HfApi().list_repo_files("tester/priv", repo_type="dataset", revision=pr)


def test_failed_push_keeps_local_data_and_retry_succeeds(hub, mined):
    out, _, _ = mined
    before = digest(out / "ntuple")
    hub.fail_next(1, status=500, match="/commit/")
    with pytest.raises(HubPushError, match="(?s)failed.*Nothing local was changed"):
        push_dataset(out / "ntuple", "tester/retry")
    assert digest(out / "ntuple") == before
    hub.refuse_auth()
    with pytest.raises(HubPushError, match="401"):
        push_dataset(out / "ntuple", "tester/retry")
    hub.refuse_auth(False)
    push_dataset(out / "ntuple", "tester/retry")
    assert len(datasets.load_dataset("tester/retry", split="train")) == len(datasets.load_from_disk(str(out / "ntuple")))


def test_an_unreachable_card_is_a_push_failure_not_a_missing_card():
    """hf_hub_download raises LocalEntryNotFoundError (a kind of EntryNotFoundError) when the Hub cannot be
    asked and nothing is cached: that must fail the push, not write a card without its configs."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    from st_hardneg.hub import _read_card

    class Api:
        def __init__(self, error):
            self.error = error

        def hf_hub_download(self, *args, **kwargs):
            raise self.error

    assert _read_card(Api(EntryNotFoundError("404: no README.md")), "tester/new", "main") is None  # no card yet
    with pytest.raises(HubPushError, match="reading the dataset card failed: the Hub .* did not answer") as failure:
        _read_card(Api(LocalEntryNotFoundError("connection refused")), "tester/new", "main")
    assert failure.value.retryable


def test_token_is_never_written_or_logged(hub, mined, model, caplog, capsys, tmp_path):
    out, _, _ = mined
    caplog.set_level(logging.DEBUG)
    push_dataset(out / "ntuple", "tester/leak")
    push_model(copy.deepcopy(model), "tester/leak-model", mined=out / "ntuple")
    hub.fail_next(1, status=500, match="/commit/")
    with pytest.raises(HubPushError) as failure:
        push_dataset(out / "ntuple", "tester/leak")
    captured = capsys.readouterr()
    assert hub.token not in caplog.text + captured.out + captured.err + str(failure.value)
    for folder in (hub.root, out):
        for path in folder.rglob("*"):
            if path.is_file():
                assert hub.token.encode() not in path.read_bytes(), path
    assert all(hub.token not in str(request) for request in hub.requests)


def _cli_has_push_options_of_issue_11() -> bool:
    """cli.py has --verbose, --private and --with-corpus FOLDER (the lead applies that change)."""
    from st_hardneg.cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args(["push", "dataset", "p", "u/r", "--verbose", "--private",
                                              "--with-corpus", "beir"])
    except SystemExit:
        return False
    return args.with_corpus == "beir" and args.private is True


@pytest.mark.skipif(not _cli_has_push_options_of_issue_11(), reason="needs the cli.py push options of issue 11")
def test_push_cli_request_log_visibility_and_corpus(hub, mined, sample_dir, caplog):
    from st_hardneg.cli import main
    from st_hardneg.hub import REQUEST_LOGGERS

    out, result, _ = mined
    levels = {name: logging.getLogger(name).level for name in REQUEST_LOGGERS}
    try:
        assert main(["push", "dataset", str(out / "ntuple"), "tester/cli-quiet"]) == 0
        assert "HTTP Request" not in caplog.text  # no request log by default
        assert hub.repo("tester/cli-quiet", "dataset").private
        caplog.clear()
        assert main(["push", "dataset", str(out / "ids"), "tester/cli-ids", "--with-corpus", str(sample_dir),
                     "--public", "--verbose"]) == 0
        uploads = [r.getMessage() for r in caplog.records if "/lfs-upload/" in r.getMessage()]
        assert uploads and all("?<redacted>" in line for line in uploads)  # shown, without the signature
        assert "X-Amz-Signature" not in caplog.text
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert not hub.repo("tester/cli-ids", "dataset").private
    assert load_resolved("tester/cli-ids").to_dict() == result.to_dataset("n-tuple").to_dict()
    assert main(["push", "dataset", str(out / "ids"), "tester/cli-ids", "--with-corpus", str(sample_dir),
                 "--private"]) == 0
    assert hub.repo("tester/cli-ids", "dataset").private


def test_push_cli(hub, mined, model, tmp_path, capsys):
    from st_hardneg.cli import main

    out, result, _ = mined
    assert main(["push", "dataset", str(out / "ntuple"), "tester/cli-hn", "--license", "cc-by-4.0"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert len(datasets.load_dataset("tester/cli-hn", split="train")) == len(datasets.load_from_disk(str(out / "ntuple")))
    model.save(str(tmp_path / "model"))
    # --eci-scorer reads any format `mine` saves (here parquet), not only save_to_disk's arrow
    result.save(tmp_path / "pq", "n-tuple", file_format="parquet")
    scorer = str(tmp_path / "model")
    assert main(["push", "dataset", str(tmp_path / "pq"), "tester/cli-pq", "--eci-scorer", scorer]) == 0
    assert "ECI" in DatasetCard.load("tester/cli-pq", repo_type="dataset").text
    assert main(["push", "model", str(tmp_path / "model"), "tester/cli-model", "--dataset-repo", "tester/cli-hn",
                 "--mined", str(out / "ntuple")]) == 0
    assert "### Hard Negatives" in ModelCard.load("tester/cli-model").text
    hub.refuse_auth()
    assert main(["push", "dataset", str(out / "ntuple"), "tester/cli-hn"]) == 1  # clear error, no traceback
    assert "failed" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["mteb", "beir"])
def test_a_beir_dataset_on_the_hub_loads_by_name_and_mines(layout, hub, scifact, model, cache_dir):
    """mteb/<name> keeps its qrels in the default config; BeIR/<name> in a sibling <name>-qrels repository."""
    from st_hardneg import load_beir, load_data

    small = slice_data(scifact, 6, 60)
    repo = f"tester/beir-{layout}"
    corpus = datasets.Dataset.from_dict({"_id": small.corpus_ids, "title": [""] * len(small.corpus_ids),
                                         "text": small.corpus_texts})
    queries = datasets.Dataset.from_dict({"_id": small.query_ids, "text": small.query_texts})
    qrels = datasets.Dataset.from_dict({"query-id": [small.query_ids[q] for q, _ in small.pairs],
                                        "corpus-id": [small.corpus_ids[d] for _, d in small.pairs],
                                        "score": [1] * len(small.pairs)})
    corpus.push_to_hub(repo, config_name="corpus", split="corpus")
    queries.push_to_hub(repo, config_name="queries", split="queries")
    if layout == "mteb":
        qrels.push_to_hub(repo, config_name="default", split="train")
    else:
        qrels.push_to_hub(f"{repo}-qrels", split="train")
    loaded = load_beir(repo, "train")
    assert (loaded.corpus_ids, loaded.query_ids, loaded.pairs) == (small.corpus_ids, small.query_ids, small.pairs)
    assert loaded.source == f"hub-beir:{repo}#train"
    assert load_data(repo).pairs == small.pairs  # the generic loader recognises a BEIR dataset by its configs
    result = mine(repo, model, num_negatives=2, cache_folder=cache_dir, verbose=False)
    assert len(result.to_dataset("n-tuple")) == len(small.pairs)


def test_a_hub_dataset_without_beir_configs_is_a_clear_error(hub, scifact):
    from st_hardneg import DataError, load_beir

    datasets.Dataset.from_dict({"anchor": ["q"], "positive": ["p"]}).push_to_hub("tester/pairs-only")
    with pytest.raises(DataError, match="hub:tester/pairs-only: not a BEIR dataset: no corpus or queries config"):
        load_beir("tester/pairs-only")


def test_mafin_model_round_trip_says_which_black_box_it_needs(hub, model):
    from st_hardneg.mafin import MafinModel, PrecomputedBlackBox

    texts = ["hard negatives", "a claim about cells"]
    rng = np.random.default_rng(0)
    box = PrecomputedBlackBox({t: rng.normal(size=6) for t in texts}, name="acme/embed-v1")
    mafin = MafinModel.from_models(copy.deepcopy(model), box, weight=0.5)
    expected = mafin.encode(texts)
    push_model(mafin, "tester/mafin-minilm")
    card = ModelCard.load("tester/mafin-minilm")
    assert "### Mafin: this model needs its black box" in card.text
    assert "**`acme/embed-v1`** (6-d)" in card.text and 'MafinModel("tester/mafin-minilm", black_box=black_box)' in card.text
    back = MafinModel("tester/mafin-minilm", black_box=box)
    assert np.allclose(back.encode(texts), expected, atol=1e-5)
    # A model that is no Mafin model gets no such section.
    push_model(copy.deepcopy(model), "tester/plain-minilm")
    assert "Mafin" not in ModelCard.load("tester/plain-minilm").text
