"""GGUF files written from a tiny Hugging Face folder, as llama.cpp's convert_hf_to_gguf.py lays them out
(the `gguf` package's writer, float32 tensors so the weights are the folder's exactly):

    general.architecture = llama | qwen2 | qwen3, ARCH.block_count, ARCH.attention.head_count(_kv), ...
    token_embd, blk.L.attn_norm, attn_q/k/v (.bias: qwen2), attn_q_norm/attn_k_norm (qwen3), attn_output,
    ffn_norm, ffn_gate, ffn_up, ffn_down, output_norm, output (absent when tied)
    tokenizer.ggml.model gpt2, .pre, .tokens, .token_type (3: control), .merges

llama.cpp interleaves a llama's q and k rows per head (its rotary layout; our loader undoes it); qwen2
and qwen3 use the "neox" layout, the Hugging Face order, and are stored as they are.
"""

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from app.engine.tokenize import QWEN2_REGEX

F32 = np.float32


def qwen2_tokenizer(folder: Path, corpus: list[str], vocab_size: int) -> int:
    """A tokenizer.json shaped like Qwen2's: NFC, the Qwen2 split regex then byte-level, <|endoftext|>."""
    tk = Tokenizer(models.BPE())
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"])
    tk.train_from_iterator(corpus, trainer)
    tk.save(str(folder / "tokenizer.json"))
    return tk.get_vocab_size()


def _permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's row interleaving of a llama's attn_q / attn_k ([out, ...]): HF's rotate-half -> pairs."""
    out = w.shape[0]
    return w.reshape(n_heads, 2, out // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(folder: Path, path: Path, pre: str) -> Path:
    hf = json.loads((folder / "config.json").read_text())
    arch = hf["model_type"]
    assert arch in ("llama", "qwen2", "qwen3"), arch
    sd = {k.removeprefix("model."): v.astype(F32) for k, v in load_file(folder / "model.safetensors").items()}
    H, KV, d = hf["num_attention_heads"], hf["num_key_value_heads"], hf["hidden_size"]
    d_head = hf.get("head_dim") or d // H
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(folder.name)
    w.add_block_count(hf["num_hidden_layers"])
    w.add_context_length(hf["max_position_embeddings"])
    w.add_embedding_length(d)
    w.add_feed_forward_length(hf["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_key_length(d_head)
    w.add_value_length(d_head)
    w.add_rope_freq_base(float((hf.get("rope_parameters") or {}).get("rope_theta") or hf.get("rope_theta")))
    w.add_layer_norm_rms_eps(hf["rms_norm_eps"])

    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = dict(tok["model"]["vocab"])
    special = {t["content"] for t in tok["added_tokens"] if t["special"]}
    for t in tok["added_tokens"]:
        vocab[t["content"]] = t["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert [vocab[t] for t in tokens] == list(range(len(tokens))), "token ids are not 0..n-1"
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    w.add_add_bos_token(False)
    if special:
        w.add_eos_token_id(vocab[sorted(special)[0]])

    permute = arch == "llama"
    w.add_tensor("token_embd.weight", sd["embed_tokens.weight"])
    for L in range(hf["num_hidden_layers"]):
        b, a = f"layers.{L}.", f"layers.{L}.self_attn."
        o = f"blk.{L}."
        w.add_tensor(o + "attn_norm.weight", sd[b + "input_layernorm.weight"])
        for name, n in (("q", H), ("k", KV), ("v", KV)):
            for part in ("weight", "bias"):
                if (t := sd.get(f"{a}{name}_proj.{part}")) is not None:
                    w.add_tensor(f"{o}attn_{name}.{part}", _permute(t, n) if permute and name != "v" else t)
        if arch == "qwen3":
            w.add_tensor(o + "attn_q_norm.weight", sd[a + "q_norm.weight"])
            w.add_tensor(o + "attn_k_norm.weight", sd[a + "k_norm.weight"])
        w.add_tensor(o + "attn_output.weight", sd[a + "o_proj.weight"])
        w.add_tensor(o + "ffn_norm.weight", sd[b + "post_attention_layernorm.weight"])
        w.add_tensor(o + "ffn_gate.weight", sd[b + "mlp.gate_proj.weight"])
        w.add_tensor(o + "ffn_up.weight", sd[b + "mlp.up_proj.weight"])
        w.add_tensor(o + "ffn_down.weight", sd[b + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["norm.weight"])
    if not hf.get("tie_word_embeddings") and "lm_head.weight" in sd:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
