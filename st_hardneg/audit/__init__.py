"""Label audit: likely missing and wrong relevance labels, with evidence, calibrated confidence and corrections.

Stages, each a module: :mod:`.evidence` (the engine's candidates and scores, laid out per item),
:mod:`.detectors` (the rules), :mod:`.calibration` (``P(relevant)``), :mod:`.labels` (the audit) and
:mod:`.report` (:class:`LabelAudit`: review files, summary, corrected qrels).

Example::

    from st_hardneg import sample_data_path
    from st_hardneg.audit import audit_labels

    audit = audit_labels(sample_data_path(), k=50)
    print(audit.table())
"""

from .labels import audit_labels, gather_evidence, judge, score_items
from .report import LabelAudit

__all__ = ["LabelAudit", "audit_labels", "gather_evidence", "judge", "score_items"]
