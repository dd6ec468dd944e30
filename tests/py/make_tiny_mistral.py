#!/usr/bin/env python3
"""Writes a tiny, deterministic, Mistral-shaped GGUF model for Orcinus' end-to-end tests.

    make_tiny_mistral.py OUT.gguf [--type F32|F16|Q8_0]

Run it with the project's .venv (scripts/setup-python.sh: numpy==2.4.6, gguf==0.19.0,
sentencepiece==0.2.3); the output is byte-for-byte reproducible with those versions and the
real Mistral-7B v0.1 tokenizer at target/fixtures/tokenizer.model.v1 (scripts/fetch-fixtures.sh;
override with --tokenizer). numpy's Generator does not promise the same stream across numpy
versions, so the pinned numpy is part of the recipe; tests/data/reference/*.json record the
sha256 of the files the reference outputs were computed on.

The file looks like TheBloke's Mistral-7B-OpenOrca GGUF files, scaled down:

    general.architecture "llama" (Mistral = Llama + GQA; no sliding_window key, which
    llama.cpp ignores for the llama architecture anyway)
    n_embd 256, 4 layers, 8 heads of 32, 2 KV heads (GQA 4:1), n_ff 768, context 4096,
    rope freq_base 10000 (NORM rope over all 32 dims), rms eps 1e-5, untied output
    tokenizer: SentencePiece "llama" with the real 32000-piece Mistral v0.1 vocabulary, types as
    llama.cpp's converter sets them, plus <|im_end|> (32000) and <|im_start|> (32001) appended
    as USER_DEFINED with score -1000 (as in TheBloke's OpenOrca file), a ChatML template,
    bos 1, eos 2, unk 0, add_bos true, add_eos false

Tensors (GGUF `ne` order, i.e. numpy shape reversed), in the order llama.cpp's converter writes:

    token_embd.weight            [256, 32002]
    blk.N.attn_norm.weight       [256]            F32 always
    blk.N.attn_q.weight          [256, 256]
    blk.N.attn_k.weight          [256, 64]
    blk.N.attn_v.weight          [256, 64]
    blk.N.attn_output.weight     [256, 256]
    blk.N.ffn_norm.weight        [256]            F32 always
    blk.N.ffn_gate.weight        [256, 768]
    blk.N.ffn_up.weight          [256, 768]
    blk.N.ffn_down.weight        [768, 256]
    output_norm.weight           [256]            F32 always
    output.weight                [256, 32002]

Weights are N(0, 1) float32 draws from numpy.random.default_rng(SEED), drawn in the order
above, scaled per tensor kind (see SCALES) so that attention is neither uniform nor one-hot
and the logits spread by a few units (std about 3; top-1/top-2 margins mostly > 0.1), with no
NaN or overflow. --type F16 stores the 2-D tensors as numpy float16 (round to nearest even, as
ggml does); --type Q8_0 quantizes them with gguf.quants.quantize, whose Q8_0 bytes equal
ggml's quantize_row_q8_0_ref. Norm weights stay F32, as llama.cpp's converter leaves them.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
from sentencepiece import SentencePieceProcessor

SEED = 20260126

N_EMBD = 256
N_LAYER = 4
N_HEAD = 8
N_HEAD_KV = 2
HEAD_DIM = N_EMBD // N_HEAD  # 32
N_FF = 768
N_CTX_TRAIN = 4096
ROPE_FREQ_BASE = 10000.0
RMS_EPS = 1e-5

ADDED_TOKENS = ["<|im_end|>", "<|im_start|>"]  # ids 32000, 32001
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Standard deviation of each tensor kind. Matrices get c / sqrt(fan_in): q and k a little
# larger than 1/sqrt(fan_in) so attention scores (q.k / sqrt(32)) have std about 1.5; the
# output projection 3 / sqrt(256) so logits have std about 3. Norm weights are 1 + 0.1 N(0, 1)
# so a missing or misapplied norm weight shows in the logits.
SCALES = {
    "token_embd": 1.0,
    "attn_q": 1.5 / np.sqrt(N_EMBD),
    "attn_k": 1.5 / np.sqrt(N_EMBD),
    "attn_v": 1.0 / np.sqrt(N_EMBD),
    "attn_output": 1.0 / np.sqrt(N_EMBD),
    "ffn_gate": 1.0 / np.sqrt(N_EMBD),
    "ffn_up": 1.0 / np.sqrt(N_EMBD),
    "ffn_down": 1.0 / np.sqrt(N_FF),
    "output": 3.0 / np.sqrt(N_EMBD),
}
NORM_NOISE = 0.1

TYPES = {
    "F32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "F16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "Q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
}


def spm_vocab(path):
    """tokens, scores, token types as llama.cpp's converter (_create_vocab_sentencepiece) makes
    them from a SentencePiece model, then the ChatML tokens appended as USER_DEFINED."""
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(path))
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        if sp.IsUnknown(i):
            ty = TokenType.UNKNOWN
        elif sp.IsControl(i):
            ty = TokenType.CONTROL
        elif sp.IsUnused(i):
            ty = TokenType.UNUSED
        elif sp.IsByte(i):
            ty = TokenType.BYTE
        else:
            ty = TokenType.NORMAL
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(sp.GetScore(i))
        types.append(int(ty))
    for t in ADDED_TOKENS:
        tokens.append(t.encode("utf-8"))
        scores.append(-1000.0)
        types.append(int(TokenType.USER_DEFINED))
    return tokens, scores, types


def tensor_plan(n_vocab):
    """(name, numpy shape, scale kind or None for a norm) in file order."""
    plan = [("token_embd.weight", (n_vocab, N_EMBD), "token_embd")]
    kv = N_HEAD_KV * HEAD_DIM
    for i in range(N_LAYER):
        p = f"blk.{i}."
        plan += [
            (p + "attn_norm.weight", (N_EMBD,), None),
            (p + "attn_q.weight", (N_EMBD, N_EMBD), "attn_q"),
            (p + "attn_k.weight", (kv, N_EMBD), "attn_k"),
            (p + "attn_v.weight", (kv, N_EMBD), "attn_v"),
            (p + "attn_output.weight", (N_EMBD, N_EMBD), "attn_output"),
            (p + "ffn_norm.weight", (N_EMBD,), None),
            (p + "ffn_gate.weight", (N_FF, N_EMBD), "ffn_gate"),
            (p + "ffn_up.weight", (N_FF, N_EMBD), "ffn_up"),
            (p + "ffn_down.weight", (N_EMBD, N_FF), "ffn_down"),
        ]
    plan += [
        ("output_norm.weight", (N_EMBD,), None),
        ("output.weight", (n_vocab, N_EMBD), "output"),
    ]
    return plan


def make(out, type_name, tokenizer):
    qtype, ftype = TYPES[type_name]
    tokens, scores, types = spm_vocab(tokenizer)
    n_vocab = len(tokens)

    w = GGUFWriter(out, "llama")
    w.add_name(f"tiny-mistral-{type_name.lower()}")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_freq_base(ROPE_FREQ_BASE)
    w.add_file_type(ftype)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    rng = np.random.default_rng(SEED)
    for name, shape, kind in tensor_plan(n_vocab):
        x = rng.standard_normal(shape, dtype=np.float32)
        if kind is None:
            w.add_tensor(name, (np.float32(1.0) + np.float32(NORM_NOISE) * x).astype(np.float32))
        elif qtype == GGMLQuantizationType.F32:
            w.add_tensor(name, x * np.float32(SCALES[kind]))
        elif qtype == GGMLQuantizationType.F16:
            w.add_tensor(name, (x * np.float32(SCALES[kind])).astype(np.float16))
        else:
            q = gguf.quants.quantize(x * np.float32(SCALES[kind]), qtype)
            w.add_tensor(name, q, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv):
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--type", choices=sorted(TYPES), default="F32")
    ap.add_argument("--tokenizer", default=str(root / "target/fixtures/tokenizer.model.v1"),
                    help="Mistral-7B v0.1 SentencePiece model (default: %(default)s)")
    a = ap.parse_args(argv)
    if not Path(a.tokenizer).is_file():
        sys.exit(f"make_tiny_mistral: {a.tokenizer} missing; run scripts/fetch-fixtures.sh")
    make(a.out, a.type, a.tokenizer)


if __name__ == "__main__":
    main(sys.argv[1:])
