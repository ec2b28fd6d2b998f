"""plotly.js, from the plotly Python package, served by us under a content-hashed URL (no CDN: the
app and the lesson pack work offline)."""

import gzip
import hashlib
from functools import lru_cache
from pathlib import Path

import plotly


def plotly_path() -> Path:
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=1)
def plotly_bundle() -> tuple[str, bytes, bytes]:
    """(digest, raw, gzipped), read and compressed once per process."""
    raw = plotly_path().read_bytes()
    return hashlib.sha256(raw).hexdigest()[:12], raw, gzip.compress(raw, 6, mtime=0)


def plotly_url() -> str:
    return f"/vendor/plotly-{plotly_bundle()[0]}.min.js"
