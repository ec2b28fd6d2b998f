"""Models named by Hugging Face id: `hf:ORG/NAME` or `hf:ORG/NAME@REVISION` (a branch, tag or commit).

The files come through huggingface_hub's own cache (`models--ORG--NAME/snapshots/COMMIT/...`,
`refs/BRANCH`), so a model pulled once is shared with transformers and every other tool that
uses it. Only what the engine reads is fetched: the config, the tokenizer and safetensors weights.
The environment is read at each call, not when huggingface_hub was imported (it reads its own
settings once): HF_HOME / HF_HUB_CACHE say where the cache is, HF_HUB_OFFLINE=1 forbids the
network (the cache must hold the model), HF_TOKEN authenticates (gated and private models).

Fetching happens when the server starts or by `attnscope models pull`, never inside a request.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError

PREFIX = "hf:"
ALLOW_PATTERNS = [
    "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "vocab.json", "merges.txt",  # GPT-2 style tokenizers without a tokenizer.json
    "*.safetensors", "model.safetensors.index.json",
]
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubId:
    repo: str  # ORG/NAME
    revision: str | None = None  # None: the default branch (refs/main)

    def __str__(self) -> str:
        return PREFIX + self.repo + (f"@{self.revision}" if self.revision else "")

    @property
    def name(self) -> str:  # what a model id is made from when none is given
        return self.repo.split("/", 1)[1]


def is_hub_id(spec: str) -> bool:
    return spec.strip().startswith(PREFIX)


def parse(spec: str) -> HubId:
    """`hf:ORG/NAME[@REVISION]` -> HubId; anything else is a ValueError saying what was expected."""
    body = spec.strip()[len(PREFIX):] if is_hub_id(spec) else spec.strip()
    repo, _, rev = body.partition("@")
    if not _REPO.fullmatch(repo) or (_ and not rev) or "@" in rev:
        raise ValueError(f"{spec!r} is not a Hugging Face id: write hf:ORG/NAME or hf:ORG/NAME@REVISION")
    return HubId(repo, rev or None)


def cache_dir() -> Path:
    """huggingface_hub's cache as the environment says now: HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub (~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def offline() -> bool:
    return (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper() in _TRUE


def fetch(hid: HubId, *, progress: bool = False) -> Path:
    """The local snapshot folder of hid, downloading what the cache lacks (unless offline).

    progress: huggingface_hub's tqdm bars on stderr, on a terminal only (the CLI); else none.
    Raises ModelLoadError with what to do: pull it, set HF_TOKEN, check the id or revision.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Bars(hub_tqdm):  # disable=None: tqdm draws on a terminal only (a pipe or a server log stays clean)
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": None if progress else True})

    where = cache_dir()
    try:
        path = snapshot_download(hid.repo, revision=hid.revision, cache_dir=where, local_files_only=offline(),
                                 token=os.environ.get("HF_TOKEN") or None, allow_patterns=ALLOW_PATTERNS,
                                 tqdm_class=Bars)
    except RevisionNotFoundError:
        raise ModelLoadError(f"{hid}: the Hub has no revision {hid.revision!r} of {hid.repo}") from None
    except GatedRepoError:
        raise ModelLoadError(f"{hid} is gated: accept its terms on the Hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"{hid}: no such model on the Hub (a private one needs HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline() else "the Hub cannot be reached"
        raise ModelLoadError(f"{hid} is not in the Hugging Face cache ({where}) and {why}: "
                             f"run `attnscope models pull {hid}` where there is a network") from None
    except (HfHubHTTPError, OSError) as e:
        raise ModelLoadError(f"{hid}: cannot download: {e}") from e
    return Path(path)
