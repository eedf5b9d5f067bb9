"""LabelAudit: the audit's flags, its summary, the review files and the corrected labels."""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import DataError, MiningData, OptionError

logger = logging.getLogger(__name__)

KINDS = ("missing", "wrong")
REVIEW_TEXT_CHARS = 300


@dataclass
class LabelAudit:
    """Likely missing and wrong relevance labels of one dataset, with their evidence.

    Attributes:
        flags: One dict per flag, most likely error first: ``kind`` ("missing": an unlabelled
            document that is probably relevant; "wrong": a labelled positive that probably is not),
            ``query_id``, ``doc_id``, ``confidence``, ``reason``, ``votes`` (models whose rule fired),
            and per model (:attr:`models` order) ``scores``, ``ranks`` and ``positive_scores`` (the
            median of the query's other positives, what the flag was compared with; None when
            there is none).
        models: Role -> model name ("student" is the mining model, then "teacher", "teacher 2", ...).
        settings: The audit's settings.
        calibration: How confidence was computed, with the estimated ``P(labelled | relevant)``.
        stats: Counts of what was examined.
        threshold: Default confidence for :meth:`corrected_data` and :meth:`write_qrels`.
        data: The audited data (None for an audit read back with :meth:`load`).
        source: The audited data's description (``MiningData.source``); applying the audit to other
            data logs a warning.
    """

    flags: list[dict[str, Any]]
    models: dict[str, str]
    settings: dict[str, Any]
    calibration: dict[str, Any]
    stats: dict[str, Any]
    threshold: float = 0.5
    data: MiningData | None = field(default=None, repr=False)
    source: str | None = None

    # -- summaries ---------------------------------------------------------------------------
    def summary(self, threshold: float | None = None) -> dict[str, Any]:
        """Counts of flags by kind and reason, at and above ``threshold``, and the models' agreement."""
        t = self._threshold(threshold)
        out: dict[str, Any] = {"models": dict(self.models), "threshold": t, **self.stats}
        for kind in KINDS:
            flags = [f for f in self.flags if f["kind"] == kind]
            reasons: dict[str, int] = {}
            for f in flags:
                for reason in f["reason"].split("; "):
                    key = reason.split(" (")[0]
                    reasons[key] = reasons.get(key, 0) + 1
            votes: dict[str, int] = {}
            for f in flags:
                votes[str(f["votes"])] = votes.get(str(f["votes"]), 0) + 1
            out[kind] = {"flags": len(flags), "at_threshold": sum(f["confidence"] >= t for f in flags),
                         "reasons": reasons, "votes": votes}
        out["calibration"] = dict(self.calibration)
        return out

    def table(self, threshold: float | None = None) -> str:
        """The summary as a small aligned text table."""
        s = self.summary(threshold)
        lines = [f"{'queries audited':<44}{s['queries']:>10,}", f"{'labelled positives':<44}{s['positives']:>10,}",
                 f"{'unlabelled candidates examined':<44}{s['candidates']:>10,}"]
        for kind, label in (("missing", "likely missing labels"), ("wrong", "likely wrong labels")):
            lines.append(f"{label:<44}{s[kind]['flags']:>10,}")
            lines.append(f"{'  with confidence >= ' + format(s['threshold'], 'g'):<44}{s[kind]['at_threshold']:>10,}")
            for reason, count in sorted(s[kind]["reasons"].items(), key=lambda kv: -kv[1]):
                lines.append(f"{'  ' + reason[:40]:<44}{count:>10,}")
        lines.append(f"{'P(labelled | relevant), estimated':<44}{s['calibration']['c']:>10.3f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    # -- review files ------------------------------------------------------------------------
    def review_rows(self, max_chars: int = REVIEW_TEXT_CHARS) -> list[dict[str, Any]]:
        """Flags as flat rows with both texts (truncated to ``max_chars``), most likely error first."""
        if self.data is None:
            raise ValueError("this audit was read back without its data; review rows need the texts")
        query_text = dict(zip(self.data.query_ids, self.data.query_texts))
        doc_text = dict(zip(self.data.corpus_ids, self.data.corpus_texts))
        rows = []
        for f in self.flags:
            if f["query_id"] not in query_text or f["doc_id"] not in doc_text:
                raise DataError(f"{self.data.source}: the audit flags ({f['query_id']!r}, {f['doc_id']!r}), "
                                "which this data does not have")
            row = {"kind": f["kind"], "confidence": round(f["confidence"], 4), "reason": f["reason"],
                   "votes": f"{f['votes']}/{len(self.models)}", "query_id": f["query_id"], "doc_id": f["doc_id"],
                   "query": _cut(query_text[f["query_id"]], max_chars), "document": _cut(doc_text[f["doc_id"]], max_chars)}
            for role, score, rank, ref in zip(self.models, f["scores"], f["ranks"], f["positive_scores"]):
                row[f"{role} score"] = round(score, 4)
                row[f"{role} rank"] = rank
                row[f"{role} other positive"] = None if ref is None else round(ref, 4)
            rows.append(row)
        return rows

    def write_review(self, path: str | os.PathLike, max_chars: int = REVIEW_TEXT_CHARS) -> Path:
        """Write the review file: JSON Lines for ``.jsonl``, CSV for ``.csv``."""
        path = Path(path)
        rows = self.review_rows(max_chars)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            with path.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif path.suffix == ".csv":
            columns = list(rows[0]) if rows else ["kind", "confidence", "reason", "votes", "query_id", "doc_id",
                                                  "query", "document"] + [
                f"{role} {what}" for role in self.models for what in ("score", "rank", "other positive")]
            with path.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        else:
            raise OptionError(f"review file {path}: use a .jsonl or .csv name")
        return path

    # -- corrections -------------------------------------------------------------------------
    def corrections(self, threshold: float | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """``(added, removed)`` (query id, document id) pairs at confidence >= ``threshold``."""
        t = self._threshold(threshold)
        added = [(f["query_id"], f["doc_id"]) for f in self.flags if f["kind"] == "missing" and f["confidence"] >= t]
        removed = [(f["query_id"], f["doc_id"]) for f in self.flags if f["kind"] == "wrong" and f["confidence"] >= t]
        return added, removed

    def corrected_data(self, data: MiningData | None = None, threshold: float | None = None) -> MiningData:
        """``data`` (default: the audited data) with likely missing positives added and likely wrong ones removed.

        An added positive becomes a row of its own, and a negative of no row of its query. A query's
        last positive is never removed (unless a positive is added to it): the query would leave the
        data; such removals are counted in ``skipped``.
        """
        return self._apply(data, threshold)[0]

    def _apply(self, data: MiningData | None, threshold: float | None) -> tuple[MiningData, dict[str, int]]:
        data = data if data is not None else self.data
        if data is None:
            raise ValueError("pass the data to correct: this audit was read back without it")
        if self.source and data.source != self.source and not data.source.startswith(self.source):
            logger.warning("the audit was made on %s, and is applied to %s: flags whose ids match are applied",
                           self.source, data.source)
        added, removed = self.corrections(threshold)
        q_index = {q: i for i, q in enumerate(data.query_ids)}
        d_index = {d: i for i, d in enumerate(data.corpus_ids)}
        for q, d in added + removed:
            if q not in q_index:
                raise DataError(f"{data.source}: the audit flags query id {q!r}, which this data does not have")
            if d not in d_index:
                raise DataError(f"{data.source}: the audit flags document id {d!r}, which this corpus does not have")
        have = set(data.pairs)
        new = list(dict.fromkeys(p for p in ((q_index[q], d_index[d]) for q, d in added) if p not in have))
        drop = {(q_index[q], d_index[d]) for q, d in removed} & have
        left: dict[int, int] = {}
        for q, _ in dict.fromkeys(data.pairs):
            left[q] = left.get(q, 0) + 1
        for q, _ in new:
            left[q] = left.get(q, 0) + 1
        kept_last = 0
        for q, d in sorted(drop):
            if left[q] > 1:
                left[q] -= 1
            else:  # the query's last positive: kept
                drop.discard((q, d))
                kept_last += 1
        pairs = [p for p in data.pairs if p not in drop] + new
        skipped = dict(data.skipped)
        if kept_last:
            skipped["wrong-label flags not applied: the query's last positive"] = kept_last
        changes = {"added_positives": len(new), "removed_positives": len(drop), "kept_last_positive": kept_last}
        fixed = MiningData(data.corpus_ids, data.corpus_texts, data.query_ids, data.query_texts, pairs,
                           f"{data.source} (audited: +{len(new)} -{len(drop)})", skipped, data.columns)
        return fixed, changes

    def write_qrels(self, path: str | os.PathLike, threshold: float | None = None) -> Path:
        """The corrected labels as a BEIR qrels file (``query-id  corpus-id  score``, score 1)."""
        data = self.corrected_data(threshold=threshold)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q, d in data.pairs:
                fh.write(f"{data.query_ids[q]}\t{data.corpus_ids[d]}\t1\n")
        return path

    def write_beir(self, folder: str | os.PathLike, threshold: float | None = None, split: str = "train", *,
                   overwrite: bool = False) -> Path:
        """The corrected data as a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``):
        what ``mine()``, ``MiningDataCollator``, the recipes and ``st-hardneg mine --data`` read. Written
        beside ``folder`` and moved into place; an existing non-empty folder needs ``overwrite``."""
        from ..result import check_output, written_in_place

        data = self.corrected_data(threshold=threshold)
        folder = check_output(folder, overwrite=overwrite)
        with written_in_place(folder) as partial:
            (partial / "qrels").mkdir(parents=True)
            with (partial / "corpus.jsonl").open("w", encoding="utf-8") as fh:
                for cid, text in zip(data.corpus_ids, data.corpus_texts):
                    fh.write(json.dumps({"_id": cid, "title": "", "text": text}, ensure_ascii=False) + "\n")
            with (partial / "queries.jsonl").open("w", encoding="utf-8") as fh:
                for q in sorted({q for q, _ in data.pairs}):
                    fh.write(json.dumps({"_id": data.query_ids[q], "text": data.query_texts[q]},
                                        ensure_ascii=False) + "\n")
            self.write_qrels(partial / "qrels" / f"{split}.tsv", threshold)
        return folder

    def provenance(self, threshold: float | None = None, data: MiningData | None = None) -> dict[str, Any]:
        """What a dataset mined from corrected labels records: settings, summary and the corrections made to ``data``."""
        changes = self._apply(data, threshold)[1]
        summary = self.summary(threshold)
        return {"settings": dict(self.settings), "models": dict(self.models), "threshold": summary["threshold"],
                **changes,
                "flags": {k: summary[k]["flags"] for k in KINDS}, "queries": summary["queries"],
                "positives": summary["positives"], "calibration": summary["calibration"]}

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``audit.json`` (everything :meth:`load` needs), the review files, the summary and the qrels.

        The folder is written beside ``folder`` and moved into place when complete; an existing
        non-empty folder needs ``overwrite``.
        """
        from ..result import check_output, written_in_place

        folder = check_output(folder, overwrite=overwrite)
        record = {"format": "st-hardneg label audit", "version": 1, "models": self.models, "settings": self.settings,
                  "calibration": self.calibration, "stats": self.stats, "threshold": self.threshold,
                  "source": self.source or (None if self.data is None else self.data.source), "flags": self.flags}
        with written_in_place(folder) as partial:
            partial.mkdir()
            (partial / "audit.json").write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
            (partial / "summary.txt").write_text(self.table() + "\n", encoding="utf-8")
            if self.data is not None:
                self.write_review(partial / "review.jsonl")
                self.write_review(partial / "review.csv")
                self.write_qrels(partial / "qrels" / "corrected.tsv")
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, data: MiningData | None = None) -> LabelAudit:
        """Read an audit written by :meth:`save` (a folder or its ``audit.json``)."""
        path = Path(path)
        file = path / "audit.json" if path.is_dir() else path
        if not file.is_file():
            raise DataError(f"{path}: no label audit here (expected a folder with audit.json, written by "
                            "`st-hardneg audit`)")
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{file}: line {err.lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict) or record.get("format") != "st-hardneg label audit":
            raise DataError(f"{file}: not a label audit written by st-hardneg")
        lacking = [k for k in ("flags", "models", "settings", "calibration", "stats", "threshold") if k not in record]
        if lacking or not isinstance(record["flags"], list):
            raise DataError(f"{file}: the audit record lacks {lacking or ['a list of flags']}")
        fields = {"kind", "query_id", "doc_id", "confidence", "reason", "votes", "scores", "ranks", "positive_scores"}
        for i, flag in enumerate(record["flags"]):
            missing = fields - set(flag) if isinstance(flag, dict) else fields
            if missing or flag.get("kind") not in KINDS:
                raise DataError(f"{file}: flag {i} lacks {sorted(missing)} or has an unknown kind "
                                f"{flag.get('kind') if isinstance(flag, dict) else flag!r}")
        return cls(record["flags"], record["models"], record["settings"], record["calibration"], record["stats"],
                   record["threshold"], data, record.get("source"))

    def _threshold(self, threshold: float | None) -> float:
        t = self.threshold if threshold is None else threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise OptionError(f"threshold must be a probability between 0 and 1, got {t!r}")
        return float(t)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
