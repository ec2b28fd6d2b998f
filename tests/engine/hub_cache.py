"""A real Hugging Face hub cache, built from a model folder, for tests that run with HF_HUB_OFFLINE=1.

huggingface_hub's layout (what `snapshot_download` writes and reads back offline):

    models--ORG--NAME/blobs/<sha256>                   each file's bytes, once
    models--ORG--NAME/snapshots/<commit>/<file>        symlinks to ../../blobs/<sha256>
    models--ORG--NAME/refs/<branch or tag>             the commit hash (40 hex digits, no newline)
"""

import hashlib
import os
from pathlib import Path


def add_to_hub_cache(cache: Path, repo: str, folder: Path, *, ref: str | None = "main", commit: str | None = None) -> Path:
    """Put folder's files into the cache as one commit of repo (named by ref when given) -> the snapshot folder."""
    root = Path(cache) / f"models--{repo.replace('/', '--')}"
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    commit = commit or hashlib.sha1(repr(sorted(digests.items())).encode()).hexdigest()  # a stand-in for git's hash
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        blob = root / "blobs" / digests[p.name]
        blob.write_bytes(p.read_bytes())
        link = snapshot / p.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, snapshot))
    if ref is not None:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    return snapshot
