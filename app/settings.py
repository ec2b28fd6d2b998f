"""Every setting in one place, read from the environment (prefix ATTNSCOPE_, plus HOST/PORT/WORKERS)."""

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .engine.registry import DEFAULT_MODEL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTNSCOPE_", extra="ignore")

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("ATTNSCOPE_HOST", "HOST"))
    port: int = Field(8000, validation_alias=AliasChoices("ATTNSCOPE_PORT", "PORT"))
    workers: int = Field(1, ge=1, validation_alias=AliasChoices("ATTNSCOPE_WORKERS", "WORKERS"))
    models: str = Field("", description="extra models: paths (GGUF files or HF folders), Hugging Face ids "
                        "(hf:ORG/NAME[@REVISION]), each optionally `id=...`, separated by ':' or ','")
    default_model: str = DEFAULT_MODEL
    preload: str = Field("default", description="models to load at start: 'default', 'all', 'none' or a comma list of ids")
    cache_dir: str | None = Field(None, description="where converted weights are stored (default ~/.cache/attnscope)")
    memory_budget_mb: float = Field(0, ge=0, description="most memory the models' float32 weights may take together, in MB "
                                  "(0: no limit); a model that would pass it is refused, saying both numbers")
    max_tokens: int = Field(512, ge=1, description="longest input accepted, in tokens (never more than the model's context)")
    run_cache_mb: int = Field(512, ge=0, description="memory for cached runs (every captured tensor of recent texts)")
    response_cache_mb: int = Field(128, ge=0, description="memory for cached encoded responses")
    compute_threads: int = Field(1, ge=1, description="forward passes run at once per worker (BLAS already uses every core)")
    max_pending: int = Field(16, ge=1, description="requests allowed to wait for compute before 503 + Retry-After")
    max_generations: int = Field(4, ge=1, description="generations (/api/generate) writing at once per worker; more get 503 + "
                                 "Retry-After: each holds a key/value cache, and their steps share the compute pool with every view")
    blas_threads: int = Field(0, ge=0, description="BLAS threads per worker; 0: the cores divided among the workers. "
                              "More threads than free cores make OpenBLAS spin and thrash (measured 10x slower)")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted (413 beyond)")
    public_url: str | None = Field(None, description="the address readers use (https://host[:port]): embed snippets, oEmbed "
                                   "and discovery links use it, never the address the server listens on")
    allowed_hosts: str = Field("", description="Host header values accepted, comma list (others get 400); default: this "
                               "machine's names and addresses and the public URL's host; '*' accepts any")
    forwarded_allow_ips: str = Field("", description="reverse proxies whose X-Forwarded-Proto/-For headers are trusted (comma "
                                     "list of IPs, or '*'); empty: none are")
    cache_max_age: int = Field(300, ge=0, description="seconds that browsers and shared caches (nginx, a CDN) may reuse a "
                               "page, embed, export or API view before they revalidate it (a 304, computed without the model)")
    chromium: str = Field("/usr/bin/chromium", description="headless Chromium for PNG/SVG when kaleido cannot render")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        u = urlsplit(v.strip())
        if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query or u.fragment:
            raise ValueError(f"ATTNSCOPE_PUBLIC_URL must be http(s)://host[:port] with no path, query or fragment, not {v!r}")
        return f"{u.scheme}://{u.netloc}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
