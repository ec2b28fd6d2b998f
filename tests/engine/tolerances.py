"""How close our float32 forward must be to Hugging Face's, and why: each limit is a claim about
float32 rounding, checked with 1 and with 2 BLAS threads (`bench/parity.py` prints the worst cases;
CI runs the parity tests under ATTNSCOPE_BLAS_THREADS=1 and =2, which sets numpy's and torch's).

Where the differences come from: both sides round every product and sum to float32 (unit
roundoff u = 2^-24 ~ 6e-8), but in different orders (BLAS kernels block and split sums by thread
count; torch and OpenBLAS differ). A K-term dot product's rounding error is ~u sqrt(K) of its
scale when the roundings are independent; each layer adds such errors to the residual stream,
which carries them on, so after n_layers the stream differs by ~u sqrt(K) n_layers of its scale,
K = d_mlp being the longest sum in a layer.

Measured (bench/parity.py, 18 sentences, 1 | 2 threads; the limit is the formula's value):

  | tensor                          | 1 thread | 2 threads | limit   | margin |
  |---------------------------------|----------|-----------|---------|--------|
  | SmolLM2 pattern (abs)           | 5.8e-6   | 6.1e-6    | 1e-4    | 16x    |
  | SmolLM2 resid_pre (row)         | 1.34e-5  | 1.27e-5   | 7.0e-5  | 5.2x   |
  | SmolLM2 logits (rel)            | 4.2e-6   | 6.7e-6    | 7.1e-5  | 11x    |
  | MiniLM pattern (abs)            | 3.6e-6   | 3.6e-6    | 1e-4    | 28x    |
  | MiniLM resid_post (row)         | 2.5e-6   | 2.5e-6    | 1.4e-5  | 5.5x   |
  | MiniLM embeddings (row)         | 4.0e-7   | 4.0e-7    | 1.2e-6  | 2.9x   |
  | tiny pattern (abs)              | 6.9e-6   | 6.9e-6    | 1e-4    | 15x    |
  | tiny qwen3 pattern (abs)        | 1.8e-5   | 1.8e-5    | 1e-4    | 5.5x   |
  | tiny pattern vs float64 (abs)   | 5.4e-7   | 5.4e-7    | 1e-5    | 19x    |
  | tiny resid (row)                | 5.5e-6   | 5.5e-6    | 1e-4    | 18x    |
  | tiny logits (rel)               | 8.7e-6   | 8.7e-6    | 1e-4    | 12x    |

Qwen3's q/k norms: the tiny qwen3 checkpoints' norm gains are ~3 (so attention is peaked, see
test_parity_tiny._sharpen_qk_norms), which makes scores of tens more often than in the other tiny
models; mistral and qwen2 measured within the tiny rows above (pattern 2.6e-6, resid 1.6e-6, logits
2.3e-6); qwen3's resid 4.2e-6 and logits 7.3e-6 are within them too. The families added since (the
tiny checkpoints of test_parity_tiny.VARIANTS, its 8 sentences, 1 thread; worst pattern / resid / logits):
gemma 3.1e-6 / 3.3e-6 / 2.7e-6, phi3 2.6e-6 / 2.5e-6 / 2.4e-6, gpt_neox 2.8e-6 / 1.2e-6 / 1.2e-6,
roberta 1.4e-6 / 1.4e-6 / -, distilbert 1.7e-6 / 2.2e-6 / -: within the tiny rows, so the same limits hold.
The GGUF_VARIANTS convert to the folder's very tree (tested), so their errors are the folder's.

SmolLM2's top-1 token: the smallest gap between the reference's top two logits is 18x our largest
logit difference (sentence 13), so identical top-1 tokens is a safe claim, not luck.
"""

import numpy as np

U_F32 = 2.0 ** -24  # float32 unit roundoff (round to nearest): ~6e-8

# Attention weights are in [0, 1]: compared absolutely. A weight's error is p (1 - p) <= 1/4 times
# its score's, and a score's is its magnitude times the stream's relative error (<= rtol_resid);
# the large scores (tens) belong to saturated weights, where p (1 - p) ~ 0, so the worst measured is
# 6e-6. 1e-4 is the limit the README promises: 15-30x over every measurement.
ATOL_PATTERN = 1e-4

# The tiny random checkpoints: weights re-randomised with std 0.2 make scores of tens and peaked
# softmaxes, which amplify each rounding beyond the u sqrt(K) n_layers estimate (1.4e-6 for K = 128,
# two layers; measured up to 5.5e-6). A real bug (a wrong scale, head order or RoPE layout) shows
# as 1e-2 or more; 1e-4 keeps an order of magnitude over the measurement.
RTOL_TINY = 1e-4
# The captured pattern against softmax(q . k) recomputed in float64 from the captured q and k:
# only our float32 scores and softmax differ, ~u sqrt(d_head) |score| = 6e-8 x 4 x 20 ~ 5e-6.
ATOL_RECOMPUTE = 1e-5


def rtol_resid(cfg) -> float:
    """The residual stream after n_layers, each vector against its own scale: u sqrt(d_mlp) n_layers
    (SmolLM2: 7.0e-5, MiniLM: 1.4e-5)."""
    return U_F32 * np.sqrt(cfg.d_mlp) * cfg.n_layers


def rtol_logits(cfg) -> float:
    """The final stream's error, plus the unembedding's own d_model-term sums."""
    return rtol_resid(cfg) + U_F32 * np.sqrt(cfg.d_model)


def rtol_embed(cfg) -> float:
    """BERT's embeddings: a sum of three vectors and one layer norm over d_model."""
    return U_F32 * np.sqrt(cfg.d_model)


def abs_err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max())


def global_rel_err(a, b) -> float:
    """max |a - b| over the whole tensor / max |b| (at least 1). Right for logits (one scale for a
    row's competing tokens); wrong for the residual stream, see row_rel_err."""
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(1.0, np.abs(b).max()))


def row_rel_err(a, b) -> float:
    """Each position's vector against its own scale: max over rows i of max_j |a - b|_ij / max_j |b|_ij.

    SmolLM2's first token (the attention sink) has residual entries up to 27,000, up to 250x the
    other positions' (measured on the test sentences): against the whole tensor's maximum, an error
    100x too large anywhere but the first row would pass, and the first row's own rounding (the
    1.15e-5 that failed once, "leading and multiple spaces", layer 10, 2 threads) sets the limit."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.maximum(np.abs(b).max(-1), 1e-30)
    return float((np.abs(a - b).max(-1) / scale).max())
