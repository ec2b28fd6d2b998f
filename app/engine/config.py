"""The one config every architecture is described by (nanoGPT-style frozen dataclass)."""

from dataclasses import asdict, dataclass
from typing import Literal

# The math families. Mistral, Qwen2, Qwen3, Gemma and Phi-3 are "llama": RMS norm, rotary positions, a gated MLP,
# grouped-query attention; what sets them apart (q/k/v biases, q/k norms, GeGLU, scaled embeddings, fused
# projections) is in the weights and the fields below. RoBERTa and DistilBERT are "bert" (post-LN encoders).
# "gpt_neox" (Pythia): layer norms, partial rotary positions, attention and MLP in parallel on one stream.
Architecture = Literal["llama", "bert", "gpt2", "gpt_neox"]


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
    act: Literal["silu", "gelu", "gelu_new"]  # llama's gate: silu (SwiGLU), or gelu_new = gelu_pytorch_tanh (Gemma's GeGLU)
    causal: bool
    tied_embeddings: bool = False
    rope_theta: float = 10000.0
    n_token_types: int = 0  # BERT's segment embeddings (DistilBERT has none)
    attn_scale_by_layer: bool = False  # GPT-2's scale_attn_by_inverse_layer_idx
    qk_norm: bool = False  # Qwen3: each head's q and k RMS-normed over d_head (weights attn.q_norm.w / k_norm.w), before RoPE
    embed_scale: float = 1.0  # Gemma: token embeddings times sqrt(d_model) (rounded to float32) entering the stream
    d_rotary: int = 0  # rotary dimensions per head, the first d_rotary of d_head (Pythia's rotary_pct); 0: all of them
    position_pad_id: int = -1  # RoBERTa's padding_idx: position ids count the other tokens from it + 1; a pad token sits at it
    parallel_residual: bool = False  # GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x)), the MLP reads the layer's input
    model_type: str = ""  # the checkpoint's own name for its kind (mistral, qwen2, ...); architecture is the math family

    @property
    def norm(self) -> Literal["rms", "layer"]:
        return "rms" if self.architecture == "llama" else "layer"

    @property
    def rotary(self) -> bool:
        return self.architecture in ("llama", "gpt_neox")

    @property
    def post_ln(self) -> bool:
        return self.architecture == "bert"

    def to_dict(self) -> dict:
        return asdict(self)
