"""Request and response schemas of the HTTP API (named for what they are, FastAPI-template style).

Responses are documented here for /docs and /openapi.json; the routes serialise large arrays
with orjson directly (validating a million floats through pydantic would cost more than the
forward pass), so these classes describe the JSON rather than build it.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .lesson import LESSON_SENTENCE, MOLE_SENTENCES
from .text import Text


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class TextRequest(Strict):
    text: Text = Field(description="the sentence to run (any unicode text; a lone surrogate is invalid_text)", examples=[LESSON_SENTENCE])
    model: Text | None = Field(None, description="model id from /api/models; default: the default model")
    then: list[Annotated[int, Field(ge=0, lt=2**31)]] = Field([], max_length=4096, description="token ids the model wrote after the text (from /api/generate), "
                            "run as they are: written text may read back as other tokens (two '\\n' written, one '\\n\\n' read). "
                            "The tokens' spans index the text followed by the ids' decoded text")


class AttentionRequest(TextRequest):
    layers: list[int] | None = Field(None, description="layers to return (default: all)", max_length=256)
    encoding: Literal["json", "uint8", "float16"] = Field(
        "json", description="json: nested lists rounded to 4 decimals; uint8: base64 bytes, value = byte * scale; "
                            "float16: base64 of little-endian float16. Causal models send the lower triangle only (see packing).")
    measure: Literal["weight", "moved"] = Field(
        "weight", description="weight: the attention pattern (where each head looks); moved: "
                              "‖pattern[h,i,j] · (v[j, kv(h)] @ W_O[h])‖₂, the size of what head h carries from key j to "
                              "query i (Kobayashi et al. 2020), raw norms (uint8's scale is the layer's largest / 255)")
    pool: int | None = Field(None, ge=8, le=512, description="thumbnails: a text longer than this many tokens has each pattern "
                             "max-pooled into pool x pool blocks (the answer's pool.edges: block a covers positions "
                             "edges[a] to edges[a+1]-1), so a sharp weight never vanishes; shorter texts come whole")


class HeadRequest(TextRequest):
    layer: int = Field(description="layer index, from 0")
    head: int = Field(description="head index, from 0")
    detail: bool = Field(False, description="also return what the head reads (e), q/k before RoPE (Llama) and "
                                            "the head's output projected back to d_model")
    parts: list[Literal["qkv", "scores", "pattern", "z", "moved"]] | None = Field(
        None, max_length=5, description="only these of q/k/v, scores, pattern, z and moved (default: all but moved): a view "
                                        "that shows one of them need not carry the rest (a 400-token text's q, k, v and z "
                                        "are ~350 kB gzipped)")


class Ablation(Strict):
    ablate: list[tuple[int, int]] = Field(
        [], max_length=512, description="heads to switch off, as [layer, head] pairs; [] is exactly no ablation")
    ablate_mode: Literal["zero", "mean"] = Field(
        "zero", description="zero: the head's output z is set to 0; mean: to its mean over this text's positions")


class PredictionsRequest(TextRequest, Ablation):
    top_k: int = Field(5, ge=1, le=100, description="how many next tokens per position")
    temperature: float = Field(1.0, gt=0, le=100, description="softmax temperature applied to the logits")


class LensRequest(TextRequest, Ablation):
    top_k: int = Field(5, ge=1, le=50, description="how many tokens per position and layer")


class CompareRequest(Strict):
    model: Text | None = Field(None, description="model id from /api/models; default: the default model")
    sentences: list[Text] = Field(min_length=2, max_length=4, description="2 to 4 sentences that share a word",
                                 examples=[MOLE_SENTENCES])
    word: Text = Field(min_length=1, max_length=100, description="the shared word (whole word, case-insensitive)", examples=["mole"])


class RolloutRequest(TextRequest):
    pass


class AttributionRequest(TextRequest):
    position: int | None = Field(None, description="the position whose next token is explained (default: the last)")
    target: int | None = Field(None, ge=0, description="token id to explain (default: the top-1 next token there)")
    contrast: int | None = Field(None, ge=0, description="a second token id: explain logit(target) - logit(contrast)")


class FlowRequest(TextRequest):
    position: int | None = Field(None, description="the token whose routes `graph` holds, at the top layer (default: the last)")
    threshold: float = Field(0.04, ge=0.001, le=1, description="τ: an edge is kept when its importance is at least this "
                                                               "(and it leads to a node already kept)")
    min_importance: float = Field(0.01, ge=0.001, le=1, description="attention edges below this are left out of `attention` "
                                                                    "(the graph for any threshold >= it can be rebuilt from the response)")

    @model_validator(mode="after")
    def _threshold_at_least_min_importance(self):
        if self.threshold < self.min_importance:
            raise ValueError(f"threshold {self.threshold} is below min_importance {self.min_importance}: the edges the "
                             "graph would need are not listed; lower min_importance too")
        return self


class ResidualRequest(TextRequest):
    normalize: bool = Field(False, description="fit the PCA on unit-length vectors (directions only)")


class ModelPublic(BaseModel):
    id: str
    name: str
    architecture: Literal["llama", "bert", "gpt2", "gpt_neox"] = Field(
        description="the math family: llama (RMS norm, rotary positions, a gated MLP; also mistral, qwen2, qwen3, gemma, "
                    "phi3), bert (post-LN encoders; also roberta, distilbert), gpt2, or gpt_neox (Pythia: partial rotary, parallel residual)")
    model_type: str = Field(description="the checkpoint's own kind (its config.json model_type): llama, mistral, qwen2, qwen3, "
                                        "gemma, phi3, gpt_neox, bert, roberta, distilbert, gpt2")
    causal: bool
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_rotary: int = Field(description="how many of each head's dimensions rotary positions turn (the first d_rotary): "
                                      "d_head for Llama's family, fewer for Pythia (rotary_pct), 0 without rotary positions")
    max_tokens: int
    default: bool
    chat: bool = Field(description="it has a chat template: /api/generate can frame a prompt as a user message (chat: true)")
    status: Literal["ready"] = Field("ready", description="every model listed here runs; the others are in `unavailable`")
    source: str | None = Field(None, description="the Hugging Face id it came from (hf:ORG/NAME[@REVISION]), if it did")
    size_bytes: int = Field(description="its float32 weights, in bytes (what it holds in memory)")


class ModelUnavailable(BaseModel):
    id: str
    name: str
    status: Literal["loading", "failed", "not_loaded"] = Field(description="loading: another request is loading it now")
    reason: str | None = Field(description="why it failed: a missing id, a corrupt download, an unsupported architecture, "
                               "the memory budget...; a request naming it gets 503 model_unavailable with this reason")
    source: str | None = Field(None, description="the Hugging Face id it comes from, if it does")
    size_bytes: int | None = Field(description="its float32 weights, in bytes, when its files say (None: unknown)")


class ModelsPublic(BaseModel):
    models: list[ModelPublic]
    unavailable: list[ModelUnavailable] = Field(default_factory=list,
                                                description="models named in the settings that cannot run now, and why")


class PiecePublic(BaseModel):
    """A byte piece of a character: present only on tokens that are incomplete UTF-8 on their own
    (a byte-level tokenizer cuts an emoji or a CJK character into pieces); absent on whole tokens."""
    char: str | None = Field(None, description="byte pieces: the text the pieces of this character spell together "
                                               "(a leading space kept if the first piece has one), e.g. ' 🦊'")
    piece: int | None = Field(None, description="byte pieces: this piece's place among them, from 1")
    pieces: int | None = Field(None, description="byte pieces: how many pieces spell the character")


class TokenPublic(PiecePublic):
    id: int
    text: str = Field(description="what the token stands for; incomplete UTF-8 bytes appear as \\xNN escapes "
                                  "(char, piece and pieces say what they are part of)")
    start: int = Field(description="character offset of the token in the input (inclusive)")
    end: int = Field(description="character offset (exclusive); special tokens have start == end")


class NextPiecePublic(PiecePublic):
    """A predicted token that is a byte piece (absent fields on whole tokens): char, piece and pieces
    when it completes the character the text stops inside; else bytes, piece and range."""
    bytes: str | None = Field(None, description="a predicted piece that leaves its character unfinished: its bytes in "
                                                "hex ('20 F0 9F'); which character only the tokens after it would say")
    range: tuple[int, int] | None = Field(None, description="with bytes: the code points that character can still be "
                                                            "(its lead byte and the bytes after it fix the high bits)")


class BinaryArray(BaseModel):
    dtype: Literal["uint8", "float16"]
    shape: list[int] = Field(description="[head, query, key] of the unpacked array")
    packing: Literal["full", "tril"] = Field(description="tril: per head, rows i = 0..n-1 holding keys 0..i only "
                                                         "(causal models; the rest is 0)")
    scale: float = Field(description="multiply decoded values by this (uint8: 1/255 for weights, the largest / 255 "
                                     "for moved; float16: 1)")
    data: str = Field(description="base64 of the row-major bytes")


class AttentionPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    n_layers: int
    n_heads: int
    causal: bool
    encoding: str
    measure: Literal["weight", "moved"]
    text: str | None = Field(None, description="with then: the text the tokens' spans index (the text, then what the ids wrote)")
    pool: dict | None = Field(None, description="with pool, for a longer text: {edges}, the blocks each pattern was max-pooled into")
    attention: dict[str, list[list[list[float]]] | BinaryArray] = Field(
        description='attention["L"][h][i][j] = blocks.L.attn.hook_pattern[h, i, j]: how much query token i '
                    "attends to key token j (masked entries are 0)")


class RolloutPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    layers: list[str] = Field(description="after layer L, for L = 0 .. n_layers - 1")
    rollout: list[list[list[float]]] = Field(
        description="rollout[L][i][j]: the share of input token j in position i after layer L (Abnar & Zuidema 2020): "
                    "Ã_L = ½·mean_h(A_L) + ½·I with rows renormalised, R_0 = Ã_0, R_L = Ã_L · R_(L-1); rows sum to 1")


class FlowLayerEdges(BaseModel):
    query: list[int] = Field(description="the position the edge leads to (its node x^{L,mid})")
    key: list[int] = Field(description="the position it comes from (its node x^L)")
    importance: list[float] = Field(description="z_ij's importance in x_i^{L,mid}, 4 decimals")
    heads: list[list[int]] = Field(description="per edge, the heads that moved most along it, largest first (up to 3)")
    moved: list[list[float]] = Field(description="per edge, those heads' moved = ‖A^h[i, j] · v_j W_O^h‖₂ (Kobayashi et al. "
                                                 "2020): the size of each head's part of z_ij")


class FlowEdge(BaseModel):
    kind: Literal["attention", "attention_residual", "mlp", "mlp_residual"] = Field(
        description="attention: x_source^L -> x_target^{L,mid}; attention_residual: x_target^L -> x_target^{L,mid}; "
                    "mlp and mlp_residual: x_target^{L,mid} -> x_target^{L+1} (source == target but for attention)")
    layer: int
    source: int = Field(description="token position the edge comes from")
    target: int = Field(description="token position the edge leads to")
    importance: float


class FlowPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    n_layers: int
    n_heads: int
    causal: bool
    layers: list[str] = Field(description="layer L, for L = 0 .. n_layers - 1")
    position: int
    threshold: float
    min_importance: float
    attention: list[FlowLayerEdges] = Field(
        description="attention[L]: layer L's attention edges with importance >= min_importance. The attention block at i "
                    "sums the residual x_i^L and, for every key j, z_ij = Σ_h A^h[i, j] · v_j W_O^h; a part z's importance is "
                    "prox(z, y) / Σ_parts prox, prox(z, y) = max(0, ‖y‖₁ − ‖y − z‖₁), y the block's output (biases "
                    "included; post-LN models: the sum before the LayerNorm) (Ferrando & Voita 2024)")
    attention_residual: list[list[float]] = Field(description="[layer][pos] the residual x_i^L's importance in x_i^{L,mid}")
    mlp: list[list[float]] = Field(description="[layer][pos] the MLP output's importance in x_i^{L+1}")
    mlp_residual: list[list[float]] = Field(description="[layer][pos] the residual x_i^{L,mid}'s importance in x_i^{L+1}")
    graph: list[FlowEdge] = Field(description="the routes to `position`: from its node at the top, layer by layer down, the "
                                              "edges with importance >= threshold whose target node is already kept")


class TokenRef(NextPiecePublic):
    id: int
    text: str


class AttributionPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    position: int
    target: TokenRef
    contrast: TokenRef | None
    value: float = Field(description="the model's logit of target after position (minus contrast's)")
    scale: float = Field(description="the final norm's scale at this position, frozen: 1/rms (1/std for LayerNorm)")
    embed: float = Field(description="the token (and position) embedding's share")
    heads: list[list[float]] = Field(description="heads[L][h]: head h of layer L's write (z @ W_O[h]), through the frozen norm")
    mlps: list[float] = Field(description="mlps[L]: layer L's MLP output (less its constant output bias)")
    bias: float = Field(description="every constant part together (output biases, the norm's shift, the unembedding bias)")


class HeadPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    layer: int
    head: int
    kv_head: int = Field(description="the key/value head this query head reads (grouped-query attention)")
    d_head: int
    scale: float = Field(description="the factor applied to q·k (1/sqrt(d_head))")
    q: list[list[float]] | None = Field(None, description="[pos][d_head], blocks.L.attn.hook_q (after RoPE for Llama); "
                                        "q, k and v are absent when parts leaves out qkv (each field likewise)")
    k: list[list[float]] | None = None
    v: list[list[float]] | None = None
    scores: list[list[float | None]] | None = Field(None, description="[query][key] q·k * scale before the softmax; null where masked")
    pattern: list[list[float]] | None = None
    moved: list[list[float]] | None = Field(None, description="parts moved: [query][key] ‖pattern[i][j] · v_j W_O‖₂, what "
                                            "the head carried: /api/attention's measure moved for this head, the same 4 decimals")
    z: list[list[float]] | None = Field(None, description="[pos][d_head] the weighted sum of values, blocks.L.attn.hook_z")
    e: list[list[float]] | None = Field(None, description="detail: [pos][d_model] the head's input, "
                                        "blocks.L.ln1.hook_normalized (BERT: blocks.L.hook_resid_pre)")
    q_pre_rope: list[list[float]] | None = Field(None, description="detail (Llama): [pos][d_head] q before the rotation")
    k_pre_rope: list[list[float]] | None = None
    out: list[list[float]] | None = Field(None, description="detail: [pos][d_model] z @ W_O rows of this head: "
                                          "its share of blocks.L.hook_attn_out (which adds b_O once)")
    resid_pre: list[list[float]] | None = Field(None, description="detail: [pos][d_model] blocks.L.hook_resid_pre")
    attn_out: list[list[float]] | None = Field(None, description="detail: [pos][d_model] blocks.L.hook_attn_out (all heads)")
    v_out_norm: list[float] | None = Field(None, description="detail: [key_pos] ‖v_j @ W_O[h]‖₂, what key j moves per unit "
                                                             "of weight (moved = pattern[i][j] · v_out_norm[j])")


class Prediction(NextPiecePublic):
    id: int
    text: str
    prob: float


class PredictionsPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    temperature: float
    predictions: list[list[Prediction]] = Field(description="predictions[i]: the top-k next tokens after position i "
                                                            "(with the ablated heads switched off, if any)")
    ablate: list[tuple[int, int]] = []
    ablate_mode: str = "zero"
    original: list[list[Prediction]] | None = Field(None, description="with heads switched off: the unchanged predictions")


class LensPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    layers: list[str] = Field(description='"embed" (hook_embed), then "L" = blocks.L.hook_resid_post')
    lens: list[list[list[Prediction]]] = Field(description="lens[l][i]: top-k tokens that the final norm + unembedding "
                                                           "predicts from position i's residual at boundary l")
    ablate: list[tuple[int, int]] = []
    ablate_mode: str = "zero"
    original: list[list[list[Prediction]]] | None = None


class Occurrence(PiecePublic):
    sentence: int
    token_index: int = Field(description="the word's last token in that sentence")
    text: str
    id: int
    n_pieces: int = Field(description="how many tokens the word splits into (the last one is compared)")


class ComparePublic(BaseModel):
    model: str
    word: str
    layers: list[str]
    occurrences: list[Occurrence]
    similarity: list[list[list[float]]] = Field(description="similarity[l][a][b]: cosine of occurrences a and b at boundary l")
    pca_2d: list[list[list[float]]] = Field(description="[boundary][occurrence][2], one PCA fitted on all of them")
    explained_variance_2d: list[float]


class ResidualPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    layers: list[str] = Field(description='layer boundaries: "embed" (hook_embed), then "L" = blocks.L.hook_resid_post')
    normalize: bool
    pca_2d: list[list[list[float]]] = Field(description="[boundary][pos][2]")
    pca_3d: list[list[list[float]]] = Field(description="[boundary][pos][3]")
    explained_variance_2d: list[float]
    explained_variance_3d: list[float]
    norms: list[list[float]] = Field(description="[boundary][pos] Euclidean norm of each vector")
    cosine_to_previous: list[list[float | None]] = Field(
        description="[boundary][pos] cosine similarity to the same token one boundary earlier (null at embed)")


class ErrorPublic(BaseModel):
    error: str = Field(description="a stable machine-readable code, e.g. unknown_model, too_many_tokens")
    detail: str = Field(description="what went wrong, in words")


class HeadsRequest(TextRequest):
    top: int = Field(8, ge=1, le=100, description="how many top heads to list per score")


class HeadScore(BaseModel):
    layer: int
    head: int
    score: float


class ScoreVariant(BaseModel):
    pattern: Literal["previous", "first", "self", "broad", "induction"]
    measure: Literal["weight", "moved"] = Field(description="on the weights, or on what the head moved (per query row)")
    sink: Literal["kept", "left out"] = Field(description="key 0 (the first token) kept, or left out with each row "
                                                         "renormalised over the other keys")


class HeadsPublic(BaseModel):
    model: str
    tokens: list[TokenPublic]
    formulas: dict[str, str] = Field(description="what each score measures, as a formula")
    variants: dict[str, ScoreVariant] = Field(description="what each score reads: its pattern, measure and key 0")
    scores: dict[str, list[list[float]]] = Field(description="scores[name][layer][head]")
    top: dict[str, list[HeadScore]] = Field(description="the highest-scoring heads for each score")


# --- generation ------------------------------------------------------------------------------------

class GenerateRequest(TextRequest):
    max_new_tokens: int = Field(20, ge=1, le=128, description="tokens to write at most (the prompt plus these stay within "
                                                              "the model's max_tokens: too_many_tokens otherwise)")
    temperature: float = Field(0.0, ge=0, le=100, description="0: greedy (the likeliest token each step, as transformers' "
                                                              "do_sample=False); otherwise sample from softmax(logits / temperature)")
    top_k: int | None = Field(None, ge=1, lt=2**31, description="sample among the k likeliest tokens only (with temperature > 0)")
    top_p: float | None = Field(None, gt=0, le=1, description="sample among the smallest set of likeliest tokens whose "
                                                              "probability reaches top_p (nucleus; with temperature > 0)")
    seed: int | None = Field(None, ge=0, lt=2**63, description="the same seed and settings write the same tokens; none: "
                                                               "one is chosen and reported in settings")
    chat: bool = Field(False, description="frame the text as a user message with the model's own chat template, so a chat "
                                          "model answers it (no_chat if the model has none)")
    stream: bool = Field(False, description="application/x-ndjson: a start line, one line per token as soon as it is chosen "
                                            "(type token, with `written`: the text so far), then the summary (type done)")
    n_top: int = Field(5, ge=0, le=20, description="alternatives reported per step: the likeliest under the distribution drawn from")


class GeneratedTokenPublic(Prediction):
    position: int = Field(description="its index in the whole sequence (the prompt's tokens are 0 .. n - 1)")
    top: list[Prediction] = Field(description="the likeliest tokens under the distribution it was drawn from")
    start: int = Field(description="character span in prompt + text (as the views' tokens for text=prompt, then=then)")
    end: int


class GeneratePublic(BaseModel):
    model: str
    prompt: str = Field(description="the text as run: the request's text, framed by the chat template when chat")
    prompt_tokens: list[TokenPublic] = Field(description="the prompt's tokens, then those of the ids given in `then`")
    tokens: list[GeneratedTokenPublic] = Field(description="the tokens written, in order; prob is under the distribution "
                                                            "drawn from (greedy: the model's softmax)")
    text: str = Field(description="what follows the prompt: the given ids' text, then what was written")
    stop_reason: Literal["eos", "length", "disconnected", "cancelled"]
    settings: dict = Field(description="max_new_tokens, temperature, top_k, top_p, seed (the one used), chat")
    then: list[int] = Field(description="the ids after the prompt: send {text: prompt, then} to any view to see this state")
    reads_back: bool = Field(description="whether prompt + text tokenizes back into the same ids (often not: two '\\n' "
                                         "written read back as one '\\n\\n'); the views take `then`, so they never re-read")
