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
"""
import argparse
import json
import shutil
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import MistralConfig, MistralForCausalLM

SEED = 1234
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


def main():
    ap = argparse.ArgumentParser()
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--tokenizer", default=str(root / "target/fixtures/tokenizer.model.v1"))
    ap.add_argument("--out", default=str(root / "tests/data/hf-tiny-mistral"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    cfg = MistralConfig(
        vocab_size=32002,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        sliding_window=16,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(SEED)
    model = MistralForCausalLM(cfg)
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
    ref_model = MistralForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    ref_model.eval()
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    gen = torch.Generator().manual_seed(SEED)
    probe = sorted(set(torch.randint(3, 32002, (56,), generator=gen).tolist()) | {0, 1, 2, 32000, 32001})
    prompts = []
    for text in PROMPTS:
        ids = [1] + sp.encode(text)
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
