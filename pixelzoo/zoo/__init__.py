"""The zoo: trained models shipped inside the package, found without a network.

``zoo:NAME`` is accepted wherever a run directory is (``pixelzoo sample zoo:NAME``,
``load_run_model("zoo:NAME")``, ``load_pretrained("zoo:NAME")``). An entry is a folder
``entries/NAME/`` (or one under ``$PIXELZOO_ZOO``, a folder of entries that replaces the shipped
ones) holding what ``save_pretrained`` writes (``config.json``, ``model.safetensors`` or
``parts/PART/model.safetensors``; floating weights in float16 where that was measured to change test
bits/dim by under 0.001), ``run.json`` (the configuration it was trained with: data, training),
``metrics.jsonl`` (its training curves), ``card.json`` (how it was made and how good it is: see
``pixelzoo zoo NAME``) and ``checksums.json`` (the SHA-256 of every other file). Every file is
checked against its checksum before an entry is used; a mismatch, a missing or an unlisted file is
a CheckpointError naming it, never a silent load.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..io import read_json as read_file_json
from ..registry import did_you_mean

PREFIX = "zoo:"
CHECKSUMS = "checksums.json"
CARD = "card.json"
RUN_CONFIG = "run.json"


def is_zoo_name(name) -> bool:
    return isinstance(name, (str, os.PathLike)) and str(name).startswith(PREFIX)


def zoo_root() -> Path:
    """The folder of the entries: ``$PIXELZOO_ZOO`` when set, else the package's own."""
    own = os.environ.get("PIXELZOO_ZOO")
    return Path(own) if own else Path(__file__).resolve().parent / "entries"


def list_zoo() -> list[str]:
    """The entries' names, sorted (folders of the root holding a ``card.json``)."""
    root = zoo_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD).is_file())


def _name(name: str) -> str:
    return str(name)[len(PREFIX):] if is_zoo_name(name) else str(name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksums_of(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` except ``checksums.json``, by relative POSIX path."""
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != CHECKSUMS}


def verify(folder: Path) -> None:
    """CheckpointError unless every file below ``folder`` is listed in its ``checksums.json`` with its
    SHA-256, and every listed file is there."""
    listed = read_json(folder, CHECKSUMS)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS}
    missing = sorted(set(listed) - present)
    if missing:
        raise CheckpointError(f"zoo entry {folder.name}: {', '.join(missing)} missing (listed in {CHECKSUMS})")
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise CheckpointError(f"zoo entry {folder.name}: {', '.join(unlisted)} not listed in {CHECKSUMS}")
    for rel, digest in listed.items():
        if _sha256(folder / rel) != digest:
            raise CheckpointError(f"zoo entry {folder.name}: {rel} does not match its checksum (the file is "
                                  "damaged or was changed); reinstall pixelzoo or rebuild the entry")


def zoo_entry(name: str, check: bool = True) -> Path:
    """The folder of entry ``name`` (``zoo:NAME`` or ``NAME``), its checksums verified (``check``)."""
    bare = _name(str(name))
    folder = zoo_root() / bare
    if not bare or not (folder / CARD).is_file():
        names = list_zoo()
        raise ConfigError(f"no zoo model {bare!r}{did_you_mean(bare, names)}; the zoo holds: "
                          f"{', '.join(names) or 'nothing'} (`pixelzoo zoo` lists them)")
    if check:
        verify(folder)
    return folder


def read_json(folder: Path, file: str) -> dict:
    """The JSON object ``folder/file`` of an entry (CheckpointError naming the file otherwise)."""
    path = folder / file
    value = read_file_json(path, CheckpointError)
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def card(name: str) -> dict:
    """The entry's model card (``card.json``)."""
    return read_json(zoo_entry(name, check=False), CARD)


def run_config(name: str) -> dict:
    """The configuration the entry was trained with (``run.json``), its checksums verified."""
    return read_json(zoo_entry(name), RUN_CONFIG)


def local_dir(run_dir) -> Path:
    """Where a command's default outputs for ``run_dir`` go: the run directory itself, or for a zoo
    model ``./zoo-NAME`` (the package's folder is not for writing)."""
    return Path(f"zoo-{_name(run_dir)}") if is_zoo_name(run_dir) else Path(run_dir)
