"""Old keyword names kept for one release: mapped to the new ones with a ``FutureWarning``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any


def renamed(kwargs: Mapping[str, Any], aliases: Mapping[str, str], where: str,
            explicit: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """``kwargs`` under their new names; an unknown name raises ``TypeError`` as Python would.

    ``explicit`` says which new names the caller set too (not left at their default): an old name
    given together with its new one is a ``TypeError``, not a silent choice between them.
    """
    out = {}
    for old, value in kwargs.items():
        if old not in aliases:
            raise TypeError(f"{where}() got an unexpected keyword argument {old!r}")
        new = aliases[old]
        if (explicit or {}).get(new):
            raise TypeError(f"{where}() got both {old}= (deprecated) and {new}=; pass {new}= only")
        warnings.warn(f"{where}({old}=...) is deprecated and will be removed in the next release; use {new}=... "
                      "(sentence-transformers' name)", FutureWarning, stacklevel=3)
        out[new] = value
    return out
