"""The one config every architecture is described by (nanoGPT-style frozen dataclass)."""

from dataclasses import asdict, dataclass
from typing import Literal

Architecture = Literal["llama", "bert", "gpt2"]


@dataclass(frozen=True)
class ModelConfig:
    architecture: Architecture
    n_layers: int
    n_heads: int
    n_kv_heads: int  # == n_heads except for grouped-query attention
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int  # the longest input the model was trained for (its max_tokens)
    eps: float  # layer-norm / RMS-norm epsilon
    act: Literal["silu", "gelu", "gelu_new"]
    causal: bool
    tied_embeddings: bool = False
    rope_theta: float = 10000.0
    n_token_types: int = 0  # BERT's segment embeddings
    attn_scale_by_layer: bool = False  # GPT-2's scale_attn_by_inverse_layer_idx

    @property
    def norm(self) -> Literal["rms", "layer"]:
        return "rms" if self.architecture == "llama" else "layer"

    @property
    def post_ln(self) -> bool:
        return self.architecture == "bert"

    def to_dict(self) -> dict:
        return asdict(self)
