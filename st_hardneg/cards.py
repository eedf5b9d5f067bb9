"""Model-card provenance: record in a SentenceTransformer's own card how its negatives were mined.

sentence-transformers renders its card from ``model.model_card_data.template_path``; we extend that
template (never replace it) with a "Hard Negatives" section placed before "Training Hyperparameters".
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

NV_RETRIEVER_BIBTEX = """@article{moreira2024nvretriever,
    title={NV-Retriever: Improving text embedding models with effective hard-negative mining},
    author={Moreira, Gabriel de Souza P. and Osmulski, Radek and Xu, Mengyao and Ak, Ronay and Schifferer, Benedikt and Oldridge, Even},
    journal={arXiv preprint arXiv:2407.15831},
    year={2024}
}"""

_ANCHOR = "### Training Hyperparameters"


def record_mining_in_card(model: Any, lines: list[str]) -> Path:
    """Add a "Hard Negatives" section (``lines`` as bullet points) to ``model``'s card template.

    Returns the path of the extended template, which ``model.model_card_data.template_path`` now
    points to. Tags ``hard-negatives`` and ``st-hardneg`` and the NV-Retriever citation are added.
    """
    card = model.model_card_data
    base = Path(card.template_path).read_text(encoding="utf-8")
    marker = "<!-- st-hardneg:hard-negatives -->"
    if marker in base:  # already extended once: replace our section only
        start = base.index(marker)
        end = base.index(marker, start + len(marker)) + len(marker)
        base = base[:start] + base[end:]
    body = "\n".join(f"- {line}" for line in lines)
    section = (f"{marker}\n### Hard Negatives\n\n{{% raw %}}Negatives were mined with "
               f"[st-hardneg](https://github.com/st-hardneg/st-hardneg):\n\n{body}\n{{% endraw %}}\n{marker}\n\n")
    text = base.replace(_ANCHOR, section + _ANCHOR, 1) if _ANCHOR in base else base + "\n" + section
    folder = Path(tempfile.mkdtemp(prefix="st_hardneg_card_"))
    path = folder / "model_card_template.md"
    path.write_text(text, encoding="utf-8")
    card.template_path = path
    card.add_tags(["hard-negatives", "st-hardneg"])
    card.citations["NV-Retriever"] = NV_RETRIEVER_BIBTEX
    return path
