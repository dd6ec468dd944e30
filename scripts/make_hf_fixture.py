#!/usr/bin/env python3
"""Builds tests/data/hf-tiny-mistral/: a tiny random-weight MistralForCausalLM checkpoint in
safetensors (BF16) with the real Mistral v0.1 SentencePiece tokenizer, plus reference.json with
transformers' float32 logits and greedy continuations, for tests/convert_hf.rs.

    target/hf-venv/bin/python scripts/make_hf_fixture.py [--tokenizer PATH] [--out DIR]

Environment (never system-wide): a venv under target/ with torch, transformers, safetensors and
sentencepiece from PyPI, e.g.

    python3 -m venv target/hf-venv
    target/hf-venv/bin/pip install torch transformers safetensors sentencepiece

(the CPU-only wheel index is preferable where it is reachable:
`pip install torch --index-url https://download.pytorch.org/whl/cpu`). Recorded with torch
2.15.0 and transformers 5.24.0 on CPU.

The model: hidden 32, 2 layers, 4 heads of 8, 2 KV heads (GQA 2:1), intermediate 64, vocab
32002 (32000 SentencePiece pieces + <|im_end|> 32000 + <|im_start|> 32001), sliding window 16
(the prompts and continuations are longer, so the window matters), rope_theta 10000, rms eps
1e-5, untied lm_head. Weights are torch.manual_seed(SEED) normal draws scaled so that the
logits spread by a few units (random-init std 0.02 would make every logit nearly equal), then
rounded to bfloat16. The references are computed on the saved BF16 weights upcast to float32,
with eager attention.

reference.json:
  prompts[]: text, ids (BOS + sentencepiece ids), top_ids/top_logits (top 8 per position),
             probe_logits (logits of the PROBE ids at every position), greedy (N_GEN ids after
             the prompt, transformers generate(do_sample=False))
  probe_ids: the fixed ids whose logits are recorded at every position
  tokenize[]: text and the sentencepiece ids (no BOS)

--bpe builds tests/data/hf-tiny-bpe/ instead: a tiny random-weight LlamaForCausalLM with tied
embeddings (no lm_head tensor) and a byte-level BPE `tokenizer.json` (no tokenizer.model): the
first BPE_VOCAB ids of SmolLM2's vocabulary and the merges that make them (SmolLM2's ids follow
its merge order, so this is SmolLM2's tokenizer stopped early), SmolLM2's pre-tokenizer (digits
one by one, then byte-level with the GPT-2 regex) and its 17 special tokens. It is read from the
SmolLM2 GGUF that scripts/fetch-fixtures.sh caches (gguf from PyPI in the same venv). Its
reference.json has the same fields, with the ids of `tokenizers` (transformers'
PreTrainedTokenizerFast, no BOS: add_bos_token is false as in SmolLM2).
"""
import argparse
import json
import shutil
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

SEED = 1234
BPE_VOCAB = 4096
# The shape both fixtures share (hidden 32, 2 layers, 4 heads of 8 over 2 KV heads).
TINY_SHAPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
)
EMBED_SCALE = 0.25
N_GEN = 24
TOP_K = 8
PROMPTS = [
    "The quick brown fox jumps over the lazy dog because it wants to see the other side.",
    "Orcinus orca, the killer whale, is a toothed whale belonging to the oceanic dolphin family.",
    "1 + 1 = 2, 2 + 2 = 4; über naïve café — 東京",
]
TOKENIZE = [
    "Hello world",
    " leading space and  double  spaces",
    "über naïve café — 東京 🐋",
    "line one\nline two\ttab",
    "<s> is not special in plain text",
]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def init_weights(cls, cfg):
    torch.manual_seed(SEED)
    model = cls(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:  # RMSNorm weights: around 1
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p))
            elif "lm_head" in name:
                p.copy_(torch.randn_like(p) * 3.0 / p.shape[1] ** 0.5)
            else:  # projections: unit gain, a bit more on q/k so attention is not uniform
                gain = 2.0 if ("q_proj" in name or "k_proj" in name) else 1.0
                p.copy_(torch.randn_like(p) * gain / p.shape[1] ** 0.5)
    return model


def references(cls, out, encode, n_vocab, specials):
    """transformers' float32 logits and greedy continuations on the saved BF16 weights."""
    ref_model = cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    ref_model.eval()
    gen = torch.Generator().manual_seed(SEED)
    probe = sorted(set(torch.randint(3, n_vocab, (56,), generator=gen).tolist()) | set(specials))
    prompts = []
    for text in PROMPTS:
        ids = encode(text)
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = ref_model(x).logits[0].float()
            g = ref_model.generate(
                x, max_new_tokens=N_GEN, do_sample=False, eos_token_id=None, pad_token_id=0
            )[0, len(ids):].tolist()
        top = torch.topk(logits, TOP_K, dim=-1)
        margins = (top.values[:, 0] - top.values[:, 1]).min().item()
        prompts.append({
            "text": text,
            "ids": ids,
            "top_ids": top.indices.tolist(),
            "top_logits": [[round(v, 6) for v in r] for r in top.values.tolist()],
            "probe_logits": [[round(v, 6) for v in r] for r in logits[:, probe].tolist()],
            "greedy": g,
            "min_top2_margin": round(margins, 6),
        })
        print(f"{len(ids)} prompt tokens, greedy {g[:8]}..., min top-2 margin {margins:.4f}")
    return probe, prompts


def gguf_strings(reader, key):
    import gguf

    f = reader.fields[key]
    assert f.types[-1] == gguf.GGUFValueType.STRING, key
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def make_bpe(smollm2, out):
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    r = gguf.GGUFReader(smollm2)
    toks = gguf_strings(r, "tokenizer.ggml.tokens")
    merges = gguf_strings(r, "tokenizer.ggml.merges")
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
    n_special = types.index(1)  # the control tokens come first (17 in SmolLM2)
    assert all(t == 3 for t in types[:n_special])
    vocab = {t: i for i, t in enumerate(toks[:BPE_VOCAB])}
    kept = []
    for m in merges:
        a, b = m.split(" ")
        if vocab.get(a + b, BPE_VOCAB) >= BPE_VOCAB:
            break
        assert vocab[a] < vocab[a + b] and vocab[b] < vocab[a + b], m
        kept.append((a, b))
    assert len(kept) + n_special + len([t for t in types[n_special:] if t == 1]) >= BPE_VOCAB
    print(f"BPE: {BPE_VOCAB} tokens, {len(kept)} merges, {n_special} special")
    tk = Tokenizer(models.BPE(vocab=vocab, merges=kept, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in toks[:n_special]])
    out.mkdir(parents=True, exist_ok=True)
    tk.save(str(out / "tokenizer.json"))

    cfg = LlamaConfig(
        vocab_size=BPE_VOCAB,
        **TINY_SHAPE,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = init_weights(LlamaForCausalLM, cfg)
    with torch.no_grad():  # tied: smaller embeddings, so a token's own row does not dominate
        model.model.embed_tokens.weight.mul_(EMBED_SCALE)
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    decoder = {
        str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                 "normalized": False, "single_word": False}
        for i, t in enumerate(toks[:n_special])
    }
    tc = {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "chat_template": CHATML,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": BPE_VOCAB,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")

    hf = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    encode = lambda t: hf.encode(t, add_special_tokens=False)  # noqa: E731
    for t in TOKENIZE + PROMPTS:  # no dropped bytes: the ids decode back to the text
        assert hf.decode(encode(t)) == t, t
    probe, prompts = references(LlamaForCausalLM, out, encode, BPE_VOCAB, range(n_special))
    special = "<|im_start|>user\nHi<|im_end|>"
    ref = {
        "generator": "scripts/make_hf_fixture.py --bpe",
        "torch": torch.__version__,
        "probe_ids": probe,
        "prompts": prompts,
        "tokenize": [{"text": t, "ids": encode(t)} for t in TOKENIZE],
        "tokenize_special": {"text": special, "ids": encode(special)},
    }
    (out / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")


def main():
    ap = argparse.ArgumentParser()
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--tokenizer", default=str(root / "target/fixtures/tokenizer.model.v1"))
    ap.add_argument("--out")
    ap.add_argument("--bpe", action="store_true", help="build the BPE fixture instead")
    ap.add_argument("--smollm2", default=str(root / "target/fixtures/SmolLM2-135M-Instruct.Q4_1.gguf"))
    a = ap.parse_args()
    if a.bpe:
        make_bpe(a.smollm2, Path(a.out or root / "tests/data/hf-tiny-bpe"))
        return
    a.out = a.out or str(root / "tests/data/hf-tiny-mistral")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    cfg = MistralConfig(
        vocab_size=32002,
        **TINY_SHAPE,
        rope_theta=10000.0,
        sliding_window=16,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = init_weights(MistralForCausalLM, cfg)
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(a.tokenizer, out / "tokenizer.model")
    added = {"<|im_end|>": 32000, "<|im_start|>": 32001}
    (out / "added_tokens.json").write_text(json.dumps(added, indent=2) + "\n")
    decoder = {
        "0": {"content": "<unk>", "special": True},
        "1": {"content": "<s>", "special": True},
        "2": {"content": "</s>", "special": True},
        "32000": {"content": "<|im_end|>", "special": True},
        "32001": {"content": "<|im_start|>", "special": True},
    }
    for d in decoder.values():
        d.update(lstrip=False, rstrip=False, normalized=False, single_word=False)
    tc = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "chat_template": CHATML,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 512,
        "tokenizer_class": "LlamaTokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")

    # References on the saved BF16 weights, upcast to float32.
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    probe, prompts = references(
        MistralForCausalLM, out, lambda t: [1] + sp.encode(t), 32002, [0, 1, 2, 32000, 32001]
    )
    ref = {
        "generator": "scripts/make_hf_fixture.py",
        "torch": torch.__version__,
        "probe_ids": probe,
        "prompts": prompts,
        "tokenize": [{"text": t, "ids": sp.encode(t)} for t in TOKENIZE],
    }
    (out / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
