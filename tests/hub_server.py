"""A small Hugging Face Hub look-alike for tests: ``start_hub(tmp_path)`` and the ``hub`` fixture.

It speaks the part of the Hub's HTTP API that huggingface_hub, datasets and sentence-transformers use
(repo create/info/settings, preupload, LFS batch + PUT, NDJSON commits, resolve, tree, paths-info,
refs, branches, whoami), so tests can push and pull with the unmodified libraries. Commits are real: each
one is an immutable snapshot (path -> blob) with a 40-hex id, and branches / ``refs/pr/N`` point at
commits. Blob bytes live content-addressed under ``<root>/objects``; the repo metadata is kept in
memory and mirrored to ``<root>/repos.json`` for inspection. The token is never stored or logged.

Use it from a conftest with ``from hub_server import hub`` (the fixture), or ``start_hub`` +
``use_hub`` to wire a server into the environment yourself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import sys
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

USER = "tester"
# Which files go through LFS (the client asks at /preupload; the server decides, like the real Hub
# does from .gitattributes + size): big files, binary-looking samples and known binary suffixes.
LFS_MIN_SIZE = 10 * 1024 * 1024
LFS_SUFFIXES = (".parquet", ".arrow", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx",
                ".npy", ".npz", ".pkl", ".zip", ".gz", ".tar", ".msgpack")
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}  # URL prefix of each repo type
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
BAD_TOKEN = "Invalid credentials in Authorization header"  # message the client maps to a plain 401

_T = r"(?P<api_type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"  # /api/{type}s/{namespace}/{name}
_P = r"(?P<prefix>datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)"  # /[datasets/]{namespace}/{name}
ROUTES = [  # (method, pattern on the raw path, handler name); HEAD uses the GET routes
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("GET", rf"/api/{_T}(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("GET", rf"/api/{_T}/tree/(?P<rev>[^/]+)(?P<path>/.*)?", "tree"),
    ("POST", rf"/api/{_T}/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("GET", rf"/api/{_T}/commits/(?P<rev>[^/]+)", "list_commits"),
    ("GET", rf"/api/{_T}/refs", "refs"),
    ("POST", rf"/api/{_T}/branch/(?P<branch>[^/]+)", "create_branch"),
    ("PUT", rf"/api/{_T}/settings", "update_settings"),
    ("POST", rf"/api/{_T}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/api/{_T}/commit/(?P<rev>[^/]+)", "commit"),
    ("POST", rf"/{_P}\.git/info/lfs/objects/batch", "lfs_batch"),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_put"),
    ("GET", rf"/{_P}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]


@dataclass
class Request:
    """What a handler gets: the user (None without a token), the URL's named parts, query and body."""

    user: str | None
    args: dict[str, str | None]
    query: dict[str, list[str]]
    body: bytes

    @property
    def repo_type(self) -> str:  # "models" in /api/models/..., or the "datasets/" URL prefix
        kind = self.args.get("api_type") or (self.args.get("prefix") or "models/").rstrip("/")
        return kind.removesuffix("s")

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[0].lower() in ("1", "true")


class HubError(Exception):
    """An error answer: status, message (X-Error-Message) and the Hub's X-Error-Code when it has one."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.body = {"error": message, **(extra or {})}


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, dict] = field(default_factory=dict)  # path -> {sha256, size, lfs, oid}


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" / "refs/pr/1" -> commit id
    commits: dict[str, Commit] = field(default_factory=dict)
    next_pr: int = 1


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_sha1(data: bytes) -> str:
    """The git blob id, which the client compares with its own to skip unchanged regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubServer:
    """The Hub state plus a ``ThreadingHTTPServer`` on 127.0.0.1 serving it. See ``start_hub``."""

    page_size = 1000  # entries per /tree page (the client follows the Link: rel="next" header)

    def __init__(self, root: Path, token: str | None = None):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.token = token or f"hf_test_{secrets.token_hex(16)}"
        self._signing_key = secrets.token_hex(16)  # signs LFS upload URLs, as storage signs presigned URLs
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path?query, headers w/o auth)
        self.lock = threading.RLock()
        self._failures: list[list] = []  # [remaining, status, match, requests to let through first]
        self._auth_refused = False
        self._pending_lfs: dict[str, int] = {}  # oid -> size, announced by an LFS batch call
        self._commit_counter = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # keep-alive threads must not hold up stop()
        self._httpd.hub = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()

    # ---- test controls ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail_next(self, n: int = 1, status: int = 503, match: str | None = None, after: int = 0) -> None:
        """Answer the next ``n`` requests whose "METHOD /path?query" contains ``match`` (any request if
        None) with ``status``, once ``after`` such requests went through (to fail e.g. the third commit).
        The client itself retries 408/429/5xx on preupload, LFS batch/PUT, tree and downloads
        (http_backoff, 1 s then 2 s...); the /commit POST is not retried."""
        with self.lock:
            self._failures.append([n, status, match, after])

    def refuse_auth(self, refuse: bool = True) -> None:
        """Treat every token as revoked: any request carrying one gets 401 (like a bad token on the Hub)."""
        self._auth_refused = refuse

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of a revision with their bytes, read straight from storage (for assertions)."""
        with self.lock:
            commit, _ = self._resolve(self.repo(repo_id, repo_type), revision)
            return {p: self._blob(e["sha256"]).read_bytes() for p, e in commit.files.items()}

    # ---- storage ----------------------------------------------------------------------------------
    def _blob(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self._blob(sha).exists():
            tmp = self._blob(sha).with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(self._blob(sha))
        return sha

    def _save(self) -> None:
        """Mirror the metadata to repos.json so a test can look at what the server holds."""
        state = [asdict(r) for r in self.repos.values()]
        (self.root / "repos.json").write_text(json.dumps(state, indent=1))

    def _new_commit(self, repo: Repo, parent: Commit | None, title: str, message: str, files: dict) -> Commit:
        self._commit_counter += 1
        seed = json.dumps([repo.id, parent and parent.id, title, files, self._commit_counter], sort_keys=True)
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent and parent.id, title, message, _now(), files)
        repo.commits[commit.id] = commit
        return commit

    # ---- lookups ----------------------------------------------------------------------------------
    def _user(self, auth: str | None) -> str | None:
        """The user of a request: None without a token; a wrong (or refused) token is a 401."""
        if not auth:
            return None
        if self._auth_refused or auth != f"Bearer {self.token}":
            raise HubError(401, BAD_TOKEN)
        return USER

    def _repo(self, req: Request, write: bool = False) -> Repo:
        if write and req.user is None:
            raise HubError(401, "You must be authenticated to write to a repository")
        repo = self.repos.get((req.repo_type, req.args["repo"]))
        if repo is None or (repo.private and req.user is None):  # private repos are invisible without a token
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _resolve(self, repo: Repo, rev: str) -> tuple[Commit, str | None]:
        """A branch name, a full ref (refs/pr/1), or a (prefix of a) commit id -> (commit, ref or None)."""
        rev = unquote(rev)
        for ref in (f"refs/heads/{rev}", rev):
            if ref.startswith("refs/") and ref in repo.refs:
                return repo.commits[repo.refs[ref]], ref
        if re.fullmatch(r"[0-9a-f]{7,40}", rev):
            hits = [c for cid, c in repo.commits.items() if cid.startswith(rev)]
            if len(hits) == 1:
                return hits[0], None
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _url(self, repo: Repo) -> str:
        return f"{self.url}/{PREFIX[repo.type]}{repo.id}"

    # ---- tree helpers -----------------------------------------------------------------------------
    @staticmethod
    def _lfs_info(e: dict) -> dict:
        return {"oid": e["sha256"], "sha256": e["sha256"], "size": e["size"],
                "pointerSize": len(_lfs_pointer(e["sha256"], e["size"]))}

    @staticmethod
    def _under(files: dict, folder: str) -> dict:
        return {p: e for p, e in files.items() if not folder or p.startswith(folder + "/")}

    @staticmethod
    def _folders(files: dict) -> set[str]:
        return {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}

    def _info(self, commit: Commit, path: str) -> dict | None:
        """The tree entry (file or directory) for ``path`` at ``commit``; None when there is nothing.
        (No "lastCommit"/security fields: the client only reads them when asked to expand.)"""
        if path in commit.files:
            e = commit.files[path]
            info = {"type": "file", "path": path, "size": e["size"], "oid": e["oid"]}
            return {**info, "lfs": self._lfs_info(e)} if e["lfs"] else info
        if path in self._folders(commit.files):
            digest = json.dumps(sorted((p, e["oid"]) for p, e in self._under(commit.files, path).items()))
            return {"type": "directory", "path": path, "oid": hashlib.sha1(digest.encode()).hexdigest()}
        return None

    # ---- handlers: each takes a Request and returns (status, payload, headers) ----------------------
    def whoami(self, req: Request):
        if req.user is None:
            raise HubError(401, BAD_TOKEN)
        return 200, {"type": "user", "name": req.user, "fullname": "Test User", "orgs": [],
                     "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}}}, {}

    def validate_yaml(self, req: Request):
        return 200, {"errors": [], "warnings": []}, {}  # README metadata is accepted as is

    def create_repo(self, req: Request):
        if req.user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        data = json.loads(req.body)
        repo_type = data.get("type") or "model"
        repo_id = f"{data.get('organization') or req.user}/{data['name']}"
        if (repo_type, repo_id) in self.repos:  # exist_ok=True: the client accepts a 409 and reads its "url"
            url = self._url(self.repos[(repo_type, repo_id)])
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        private = bool(data.get("private")) or data.get("visibility") == "private"
        repo = self.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private, _now())
        # Like the Hub, a new repo starts with one commit holding .gitattributes.
        files = {".gitattributes": self._regular(GITATTRIBUTES)}
        repo.refs["refs/heads/main"] = self._new_commit(repo, None, "initial commit", "", files).id
        self._save()
        return 200, {"url": self._url(repo), "name": repo_id, "id": repo_id}, {}

    def repo_info(self, req: Request):
        repo = self._repo(req)
        commit, _ = self._resolve(repo, req.args["rev"] or "main")
        siblings = [{"rfilename": p, "size": e["size"], "blobId": e["oid"], "lfs": self._lfs_info(e) if e["lfs"] else None}
                    for p, e in sorted(commit.files.items())]
        return 200, {"id": repo.id, "author": repo.id.split("/")[0], "sha": commit.id, "private": repo.private,
                     "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                     "createdAt": repo.created, "lastModified": commit.date, "siblings": siblings,
                     "usedStorage": sum(e["size"] for e in commit.files.values())}, {}

    def tree(self, req: Request):
        commit, _ = self._resolve(self._repo(req), req.args["rev"])
        folder = unquote(req.args["path"] or "").strip("/")
        if folder and folder not in self._folders(commit.files):
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        recursive, start = req.flag("recursive"), len(folder) + 1 if folder else 0
        paths = [p for p in sorted(set(commit.files) | self._folders(commit.files))
                 if p.startswith(folder + "/" if folder else "") and (recursive or "/" not in p[start:])]
        cursor = int(req.query.get("cursor", ["0"])[0])
        page = [self._info(commit, p) for p in paths[cursor:cursor + self.page_size]]
        headers = {}
        if cursor + self.page_size < len(paths):  # GitHub-style pagination, which the client follows
            nxt = f"{self.url}{req.args['_path']}?recursive={recursive}&expand={req.flag('expand')}" \
                  f"&cursor={cursor + self.page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return 200, page, headers

    def paths_info(self, req: Request):
        commit, _ = self._resolve(self._repo(req), req.args["rev"])
        form = parse_qs(req.body.decode())  # a form post: paths=a&paths=b&expand=false
        infos = [self._info(commit, p.strip("/")) for p in form.get("paths", [])]
        return 200, [i for i in infos if i is not None], {}  # unknown paths are left out, as on the Hub

    def list_commits(self, req: Request):
        repo = self._repo(req)
        commit, out = self._resolve(repo, req.args["rev"])[0], []
        while commit:
            out.append({"id": commit.id, "title": commit.title, "message": commit.message,
                        "authors": [{"user": USER}], "date": commit.date})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return 200, out, {}

    def refs(self, req: Request):
        out = {"branches": [], "converts": [], "tags": [], "pullRequests": []}
        for ref, cid in sorted(self._repo(req).refs.items()):
            kind = "branches" if ref.startswith("refs/heads/") else "pullRequests"
            out[kind].append({"name": ref.removeprefix("refs/heads/"), "ref": ref, "targetCommit": cid})
        return 200, out, {}

    def create_branch(self, req: Request):
        repo = self._repo(req, write=True)
        ref = f"refs/heads/{unquote(req.args['branch'])}"
        if ref in repo.refs:  # the client ignores a 409 when exist_ok=True
            raise HubError(409, "Reference already exists")
        start = (json.loads(req.body) if req.body else {}).get("startingPoint") or "main"
        repo.refs[ref] = self._resolve(repo, start)[0].id
        self._save()
        return 200, {}, {}

    def update_settings(self, req: Request):
        """``HfApi.update_repo_settings``: visibility ("public"/"private", or the older "private": bool) and gating."""
        repo = self._repo(req, write=True)
        data = json.loads(req.body or b"{}")
        if "visibility" in data:
            if data["visibility"] not in ("public", "private"):
                raise HubError(400, f"Invalid visibility {data['visibility']!r}")
            repo.private = data["visibility"] == "private"
        elif "private" in data:
            repo.private = bool(data["private"])
        self._save()
        return 200, {}, {}

    def preupload(self, req: Request):
        commit, _ = self._resolve(self._repo(req, write=True), req.args["rev"])
        out = []
        for f in json.loads(req.body)["files"]:
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["size"] >= LFS_MIN_SIZE or f["path"].lower().endswith(LFS_SUFFIXES) or b"\0" in sample
            # The current oid (git sha1, or sha256 for LFS) lets the client drop unchanged files.
            old = commit.files.get(f["path"])
            oid = old and (old["sha256"] if old["lfs"] else old["oid"])
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": oid})
        return 200, {"files": out, "commitOid": commit.id}, {}

    def lfs_batch(self, req: Request):
        self._repo(req, write=True)
        objects = []
        for obj in json.loads(req.body)["objects"]:
            oid, size = obj["oid"], obj["size"]
            if self._blob(oid).exists():  # already stored: no action, so the client skips the upload
                objects.append({"oid": oid, "size": size})
                continue
            self._pending_lfs[oid] = size
            objects.append({"oid": oid, "size": size, "authenticated": True,
                            "actions": {"upload": {"href": f"{self.url}/lfs-upload/{oid}?X-Amz-Expires=900"
                                                            f"&X-Amz-Signature={self._sign(oid)}"}}})
        return 200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"}

    def _sign(self, oid: str) -> str:
        """The signature in an upload URL's query string: a credential, like storage's X-Amz-Signature."""
        return hashlib.sha256(f"{self._signing_key}:{oid}".encode()).hexdigest()

    def lfs_put(self, req: Request):
        # Stands in for the signed storage URL: no token, but only oids announced by a batch call, signed.
        oid = req.args["oid"]
        if oid not in self._pending_lfs:
            raise HubError(403, "No pending LFS upload for this oid")
        if req.query.get("X-Amz-Signature") != [self._sign(oid)]:
            raise HubError(403, "Bad or missing upload signature")
        if hashlib.sha256(req.body).hexdigest() != oid or len(req.body) != self._pending_lfs[oid]:
            raise HubError(400, "Uploaded bytes do not match the announced sha256/size")
        self._store(req.body)
        del self._pending_lfs[oid]
        return 200, b"", {}

    def _regular(self, data: bytes) -> dict:
        return {"sha256": self._store(data), "size": len(data), "lfs": False, "oid": _git_sha1(data)}

    def commit(self, req: Request):
        repo = self._repo(req, write=True)
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first NDJSON line must be the commit header")
        header, create_pr = lines[0]["value"], req.flag("create_pr")
        base, ref = self._resolve(repo, req.args["rev"])
        parent = header.get("parentCommit")
        if parent and create_pr:
            base = self._resolve(repo, parent)[0]  # a PR starts from the given parent
        elif parent and not base.id.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        if ref is None and not create_pr:
            raise HubError(400, f"Cannot commit to a commit id ({base.id}): use a branch")
        files = dict(base.files)  # untouched files carry over
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"].strip("/")
            if not path or ".." in path.split("/"):
                raise HubError(400, f"Invalid path: {value['path']!r}")
            if key == "file":
                files[path] = self._regular(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                oid = value["oid"]
                if not self._blob(oid).exists():
                    raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
                size = self._blob(oid).stat().st_size
                files[path] = {"sha256": oid, "size": size, "lfs": True, "oid": _git_sha1(_lfs_pointer(oid, size))}
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                doomed = list(self._under(files, path))
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        commit = self._new_commit(repo, base, header.get("summary") or "", header.get("description") or "", files)
        answer = {"success": True, "commitOid": commit.id, "commitUrl": f"{self._url(repo)}/commit/{commit.id}",
                  "commitMessage": commit.title, "hookOutput": ""}
        if create_pr:
            ref = f"refs/pr/{repo.next_pr}"
            answer["pullRequestUrl"] = f"{self._url(repo)}/discussions/{repo.next_pr}"
            repo.next_pr += 1
        repo.refs[ref] = commit.id
        self._save()
        return 200, answer, {}

    def resolve(self, req: Request):
        commit, _ = self._resolve(self._repo(req), req.args["rev"])
        entry = commit.files.get(unquote(req.args["path"]))
        if entry is None:  # X-Repo-Commit lets the client cache "this file does not exist here"
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        headers = {"X-Repo-Commit": commit.id, "Content-Type": "application/octet-stream"}
        if entry["lfs"]:  # for LFS the client wants the sha256 as etag (it names the cached blob)
            headers.update({"ETag": f'"{entry["sha256"]}"', "X-Linked-Etag": f'"{entry["sha256"]}"',
                            "X-Linked-Size": str(entry["size"])})
        else:
            headers["ETag"] = f'"{entry["oid"]}"'
        return 200, self._blob(entry["sha256"]), headers

    def dispatch(self, method: str, raw_path: str, auth: str | None, body: bytes):
        parts = urlsplit(raw_path)
        for route_method, pattern, name in ROUTES:
            m = re.fullmatch(pattern, parts.path)
            if m and (route_method == method or (route_method == "GET" and method == "HEAD")):
                req = Request(self._user(auth), {**m.groupdict(), "_path": parts.path}, parse_qs(parts.query), body)
                with self.lock:  # one request at a time touches the state; commits are atomic
                    return getattr(self, name)(req)
        raise HubError(404, f"No route for {method} {parts.path}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects; every answer has a Content-Length
    timeout = 60  # idle keep-alive connections end on their own

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # streamed uploads
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        hub: HubServer = self.server.hub
        method = self.command
        body = self._read_body()  # always drain the body, or the next keep-alive request is garbage
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        with hub.lock:
            hub.requests.append((method, self.path, headers))
            failure = next((f for f in hub._failures if f[2] is None or f[2] in f"{method} {self.path}"), None)
            if failure and failure[3] > 0:  # still letting matching requests through
                failure[3] -= 1
                failure = None
            elif failure:
                failure[0] -= 1
                if failure[0] <= 0:
                    hub._failures.remove(failure)
        try:
            if failure:
                raise HubError(failure[1], f"Injected failure (fail_next) for {method} {self.path}")
            status, payload, extra = hub.dispatch(method, self.path, self.headers.get("Authorization"), body)
        except HubError as e:
            status, payload, extra = e.status, e.body, {"X-Error-Message": e.message, **e.headers}
            if e.code:
                extra["X-Error-Code"] = e.code
        except Exception as e:  # noqa: BLE001  a server bug: answer 500 with the reason instead of hanging up
            status, payload, extra = 500, {"error": repr(e)}, {"X-Error-Message": f"hub_server bug: {e!r}"}
            print(f"hub_server: {method} {self.path} failed: {e!r}", file=sys.stderr)
        self._send(method, status, payload, extra)

    def _send(self, method: str, status: int, payload, headers: dict) -> None:
        if isinstance(payload, Path):
            size = payload.stat().st_size
        else:
            payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            size = len(payload)
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if method == "HEAD":
            return
        try:
            if isinstance(payload, Path):
                with payload.open("rb") as f:
                    shutil.copyfileobj(f, self.wfile, 1 << 20)
            else:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_HEAD = do_POST = do_PUT = _handle

    def log_message(self, format, *args):  # quiet: tests inspect hub.requests instead
        pass


def start_hub(tmp_path: Path, token: str | None = None) -> HubServer:
    """Start a Hub server storing its data under ``tmp_path/hub-storage``; call ``.stop()`` when done."""
    return HubServer(Path(tmp_path) / "hub-storage", token=token)


def use_hub(hub: HubServer, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point huggingface_hub, datasets and sentence-transformers at ``hub``, with fresh caches under ``home``.

    Setting the environment is not enough once the libraries are imported: they copy HF_ENDPOINT,
    HF_HUB_OFFLINE, HF_HUB_DISABLE_XET and the cache folders into module constants at import time,
    and huggingface_hub's module-level functions (``create_repo``, ``upload_file``...) are methods of an
    ``HfApi()`` built at import, whose endpoint is fixed then. So both are patched.
    """
    import datasets.config as dconfig
    import huggingface_hub.constants as hconst
    from huggingface_hub import HfFileSystem, hf_api

    home = Path(home)
    hub_cache, ds_cache = home / "hub", home / "datasets"
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(home), "HF_HUB_CACHE": str(hub_cache), "HF_DATASETS_CACHE": str(ds_cache),
           "SENTENCE_TRANSFORMERS_HOME": str(hub_cache), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_UPDATE_DOWNLOAD_COUNTS": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN",
                "HF_HUB_DISABLE_IMPLICIT_TOKEN", "HF_OIDC_RESOURCE", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(key, raising=False)

    hub_constants = {
        "ENDPOINT": hub.url, "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": hconst.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HUB_DISABLE_XET": True,  # hf_xet is installed: without this, LFS uploads go to a Xet CAS
        "HF_HUB_OFFLINE": False,  # tests/conftest.py sets HF_HUB_OFFLINE=1 for the rest of the suite
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False, "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HOME": str(home), "HF_HUB_CACHE": str(hub_cache), "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(home / "assets"), "HF_XET_CACHE": str(home / "xet"),
        # never pick up (or write) a real stored token
        "HF_TOKEN_PATH": str(home / "token"), "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }
    for name, value in hub_constants.items():
        monkeypatch.setattr(hconst, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)

    datasets_config = {
        "HF_ENDPOINT": hub.url, "HUB_DATASETS_URL": hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
        "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False,
        "HF_CACHE_HOME": str(home), "HF_DATASETS_CACHE": ds_cache, "HF_MODULES_CACHE": home / "modules",
        "DOWNLOADED_DATASETS_PATH": ds_cache / "downloads",
        "EXTRACTED_DATASETS_PATH": ds_cache / "downloads" / "extracted",
        "USE_PARQUET_EXPORT": False,  # would ask datasets-server.<endpoint host>, which does not exist here
        "HF_UPDATE_DOWNLOAD_COUNTS": False,  # would HEAD an S3 bucket on the internet
    }
    for name, value in datasets_config.items():
        monkeypatch.setattr(dconfig, name, value)
    HfFileSystem.clear_instance_cache()  # fsspec caches instances (and their listings) per process


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running Hub server wired into the environment (see ``use_hub``); stopped after the test."""
    server = start_hub(tmp_path)
    use_hub(server, monkeypatch, tmp_path / "hf-home")
    yield server
    server.stop()
    from huggingface_hub import HfFileSystem

    HfFileSystem.clear_instance_cache()
