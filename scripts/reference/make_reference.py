#!/usr/bin/env python3
"""Records llama.cpp's outputs for one GGUF file, as the reference Orcinus' tests compare with.

    target/llama-ref-venv/bin/python scripts/reference/make_reference.py MODEL.gguf OUT.json \
        [--made-by "COMMAND THAT MADE MODEL.gguf"] [--corpus-ids IDS.json] [--text FILE]

scripts/reference/make_all.sh runs it for every reference file in tests/data/reference/.

llama.cpp comes from PyPI's llama-cpp-python, built by scripts/reference/setup.sh; this
script uses its low-level ctypes API (the same C calls llama.cpp's own tools make).

What OUT.json holds (all float32 values are written as the shortest decimal that parses back
to the same float32, so `str.parse::<f32>()` gives llama.cpp's exact bits):

  generator   llama-cpp-python version, llama.cpp/ggml version and commit, system info,
              this script's arguments, the date
  model       file name, size, sha256, --made-by
  context     the llama_context settings used for `prompts` (see CONTEXT below)
  vocab       n_vocab, bos/eos, add_bos/add_eos as llama.cpp read them, every EOG id, and the
              llama.cpp attributes of the special-looking tokens
  prompts     for each fixed prompt: its token ids (add_special=true, so BOS exactly when the
              file's metadata asks for it, as llama.cpp's CLI does; parse_special=true, as the
              CLI tokenizes prompts), then at EVERY prompt position the top-10 (id, logit)
              pairs (by logit, ties to the lower id) and the top-1 minus top-2 margin; then a
              greedy continuation of up to 64 tokens (argmax, no penalties; stops after an
              end-of-generation token, which is recorded), with the top-2 and margin per step.
              `noise`: the same prompt run (a) in llama.cpp's default context (F16 KV cache,
              flash attention auto) and (b) one token per llama_decode: max and mean |logit
              difference| over all positions and the whole vocabulary, and the positions whose
              argmax differs -- llama.cpp's own noise, a guide for test tolerances. Greedy
              steps are one-token decodes after the one-batch prompt, as in llama.cpp's CLI.
  special_tokenization  a few strings with ChatML markers, tokenized with parse_special
              false and true (shows whether llama.cpp treats each marker as special)
  perplexity  llama-perplexity's method over the repository's LICENSE (see perplexity())
  tokenize    ids for each line of scripts/reference/corpus.py, add_special=false and
              parse_special=false; with --corpus-ids, the same for every line of
              tests/data/tokenizer_corpus.jsonl, written to a separate file (the format
              tests/tokenizer_bpe.rs reads from ORCINUS_BPE_REF_IDS) whose corpus sha256 is
              recorded here
"""
import argparse
import ctypes
import datetime
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import llama_cpp
import llama_cpp._logger
from llama_cpp import llama_cpp as C

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CORPUS_JSONL = ROOT / "tests/data/tokenizer_corpus.jsonl"
TOP_K = 10
N_PREDICT = 64
PPL_CTX = 128
N_THREADS = 2

# The context the prompts run in. F32 K and V caches and no flash attention make llama.cpp's
# F32 path plain float32 arithmetic end to end (the CLI default, F16 KV cache and flash
# attention "auto", rounds K, V and, with flash attention, Q to half precision); the
# `noise.cli_default_context` of each prompt measures the difference. The model is loaded without
# llama.cpp's "extra buffer types" (weights repacked for interleaved or AMX kernels, chosen by
# CPU), so the numbers come from ggml-cpu's plain per-type dot products and depend less on the
# machine they were made on. (On the machine that made tests/data/reference/, whose CPU reports
# AMX-INT8 but whose VM does not let it run, llama.cpp's default AMX path for Q8_0/Q4_1 dies of
# SIGILL; the CLI would need --no-repack there.)
CONTEXT = {
    "n_ctx": 512,
    "n_batch": 512,
    "n_ubatch": 512,
    "n_seq_max": 1,
    "n_threads": N_THREADS,
    "n_threads_batch": N_THREADS,
    "type_k": "F32",
    "type_v": "F32",
    "flash_attn": "disabled",
    "use_extra_bufts": False,
}

PROMPTS = [
    ("capital", "The capital of France is"),
    ("code", "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci("),
    ("paragraph",
     "The history of computing is a story of ideas that took decades to become practical. "
     "Charles Babbage designed mechanical engines in the nineteenth century, Alan Turing gave "
     "computation a precise meaning in 1936, and the first electronic machines filled entire "
     "rooms. Today a phone in your pocket is millions of times faster than those early"),
    ("chatml",
     "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"),
]

SPECIAL_STRINGS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|im_start|>user\nHi<|im_end|>\n",
    "<s>Hi</s>",
    "<|endoftext|>",
]


def f32(x):
    """float32 -> the shortest decimal that parses back to the same float32 (numpy's str),
    as a Python float, which json writes with the same digits."""
    x = np.float32(x)
    if not np.isfinite(x):
        raise SystemExit(f"make_reference: non-finite value {x}")
    return float(str(x))


def dumps(v, indent=""):
    """JSON with one line per object member or list-of-objects element (each such element on
    one compact line), so the files diff line by line and stay small."""
    def compact(x):
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))
    inner = indent + " "
    if isinstance(v, dict) and any(isinstance(x, (dict, list)) for x in v.values()):
        items = [f"{inner}{compact(k)}:{dumps(x, inner)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return "[\n" + ",\n".join(inner + dumps(x, inner) for x in v) + "\n" + indent + "]"
    return compact(v)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


class Model:
    """A llama_model plus its vocab, through llama-cpp-python's ctypes bindings."""

    def __init__(self, path, extra_bufts):
        mp = C.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.use_extra_bufts = extra_bufts
        self.model = C.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise SystemExit(f"make_reference: llama.cpp could not load {path}")
        self.vocab = C.llama_model_get_vocab(self.model)
        self.n_vocab = C.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text, add_special, parse_special):
        raw = text.encode("utf-8")
        n = len(raw) + 8
        while True:
            buf = (C.llama_token * n)()
            got = C.llama_tokenize(self.vocab, raw, len(raw), buf, n, add_special, parse_special)
            if got >= 0:
                return [int(buf[i]) for i in range(got)]
            n = -got

    def detokenize(self, ids, unparse_special=True):
        arr = (C.llama_token * max(1, len(ids)))(*ids)
        n = 64 + 32 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(n)
            got = C.llama_detokenize(self.vocab, arr, len(ids), buf, n, False, unparse_special)
            if got >= 0:
                return buf.raw[:got].decode("utf-8", errors="replace")
            n = -got

    def token_text(self, t):
        return C.llama_vocab_get_text(self.vocab, t).decode("utf-8", errors="replace")

    def meta(self, key):
        buf = ctypes.create_string_buffer(4096)
        n = C.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None


class Context:
    """A llama_context with one sequence; decode() returns the logits of every token."""

    def __init__(self, model, n_ctx, n_batch, type_kv, flash_attn):
        p = C.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_batch
        p.n_seq_max = 1
        p.n_threads = N_THREADS
        p.n_threads_batch = N_THREADS
        if type_kv is not None:
            p.type_k = type_kv
            p.type_v = type_kv
        if flash_attn is not None:
            p.flash_attn_type = flash_attn
        self.ctx = C.llama_init_from_model(model.model, p)
        if not self.ctx:
            raise SystemExit("make_reference: llama.cpp could not create a context")
        self.n_vocab = model.n_vocab

    def clear(self):
        C.llama_memory_clear(C.llama_get_memory(self.ctx), True)

    def decode(self, tokens, pos0, want):
        """Decodes `tokens` at positions pos0.. in sequence 0; returns {i: logits} for the
        batch indices i in `want`."""
        n = len(tokens)
        b = C.llama_batch_init(n, 0, 1)
        try:
            for i, t in enumerate(tokens):
                b.token[i] = t
                b.pos[i] = pos0 + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 1 if i in want else 0
            b.n_tokens = n
            rc = C.llama_decode(self.ctx, b)
            if rc != 0:
                raise SystemExit(f"make_reference: llama_decode returned {rc}")
            out = {}
            for i in sorted(want):
                ptr = C.llama_get_logits_ith(self.ctx, i)
                out[i] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32, copy=True)
            return out
        finally:
            C.llama_batch_free(b)

    def free(self):
        C.llama_free(self.ctx)


def top(logits, k):
    """Top-k (ids, logits), logit descending, ties to the lower id (a stable sort)."""
    order = np.argsort(-logits, kind="stable")[:k]
    return [int(i) for i in order], [f32(logits[i]) for i in order]


def noise(other, ref, n):
    d = np.stack([np.abs(other[i] - ref[i]) for i in range(n)])
    return {"max_abs_logit_diff": f32(d.max()), "mean_abs_logit_diff": f32(d.mean()),
            "argmax_differs_at": [i for i in range(n) if int(np.argmax(other[i])) != int(np.argmax(ref[i]))]}


def run_prompt(model, ctx, ctx_cli, name, text):
    ctx.clear()
    ids = model.tokenize(text, add_special=True, parse_special=True)
    n = len(ids)
    logits = ctx.decode(ids, 0, set(range(n)))
    positions = []
    for i in range(n):
        tid, tl = top(logits[i], TOP_K)
        positions.append({"top_ids": tid, "top_logits": tl, "margin": f32(np.float32(tl[0]) - np.float32(tl[1]))})

    # llama.cpp's own noise: the same prompt (a) in llama.cpp's default context (F16 KV cache,
    # flash attention auto) and (b) fed one token per llama_decode instead of in one batch.
    ctx_cli.clear()
    cli = ctx_cli.decode(ids, 0, set(range(n)))
    ctx.clear()
    one = {i: ctx.decode([t], i, {0})[0] for i, t in enumerate(ids)}
    ctx.clear()
    again = ctx.decode(ids, 0, set(range(n)))  # the KV cache the greedy run continues from
    assert all(np.array_equal(again[i], logits[i]) for i in range(n)), "llama.cpp not deterministic"

    gen, steps, stopped = [], [], False
    nxt = int(np.argmax(logits[n - 1]))
    pos = n
    while True:
        gen.append(nxt)
        if C.llama_vocab_is_eog(model.vocab, nxt):
            stopped = True
            break
        if len(gen) == N_PREDICT:
            break
        lg = ctx.decode([nxt], pos, {0})[0]
        pos += 1
        tid, tl = top(lg, 2)
        steps.append({"top_ids": tid, "top_logits": tl, "margin": f32(np.float32(tl[0]) - np.float32(tl[1]))})
        nxt = tid[0]
    return {
        "name": name,
        "text": text,
        "add_special": True,
        "parse_special": True,
        "tokens": ids,
        "positions": positions,
        "greedy": {
            "n_predict": N_PREDICT,
            "tokens": gen,
            "stopped_at_eog": stopped,
            "text": model.detokenize(gen),
            "steps_note": "steps[j] is the top-2 after feeding tokens[j]; tokens[0] is the argmax of the last prompt position",
            "steps": steps,
        },
        "noise": {
            "note": "llama.cpp against itself, all positions x whole vocabulary: max and mean "
                    "|logit difference| to `positions`, and the positions whose argmax differs",
            "cli_default_context": dict(type_k="F16", type_v="F16", flash_attn="auto", **noise(cli, logits, n)),
            "one_token_per_decode": noise(one, logits, n),
        },
    }


def log_softmax_nll(logits, tok):
    """-log p(tok) exactly as llama-perplexity's log_softmax() computes it:
        max    = max_i logits[i]                           (float32)
        sumexp = sum_i expf(logits[i] - max)               (each term float32, sum in double)
        nll    = -(logits[tok] - max - log(sumexp))        (double)"""
    mx = np.float32(logits.max())
    sumexp = float(np.sum(np.exp(logits - mx, dtype=np.float32), dtype=np.float64))
    return -(float(logits[tok]) - float(mx) - math.log(sumexp))


def perplexity(model, text):
    """llama-perplexity's default method (tools/perplexity/perplexity.cpp, perplexity()), as
    `llama-perplexity -c 128 -b 128` runs it, one chunk per llama_decode:

      text     = the file's bytes as UTF-8, one trailing "\n" dropped (as `-f FILE` does)
      tokens   = tokenize(text, add_special=true, parse_special=false)   (BOS if the file asks)
      n_chunk  = len(tokens) // n_ctx            (the tail that does not fill a chunk is dropped)
      chunk c  = tokens[c*n_ctx : (c+1)*n_ctx], KV cache cleared, its first token replaced by
                 BOS when add_bos, all n_ctx tokens decoded at positions 0..n_ctx-1
      first    = n_ctx // 2
      scored   : for i in 0 .. n_ctx-first-2, the logits at position first+i against the chunk's
                 token first+i+1 (n_ctx-first-1 = 63 tokens per chunk)
      nll_sum += -log p,  nll2_sum += (-log p)^2,  count += 63
      running  : after chunk c, exp(nll_sum / count)            (llama.cpp prints "[c+1]%.4lf")
      final    : mean = nll_sum/count, PPL = exp(mean)
                 var  = nll2_sum/count - mean^2
                 err  = sqrt(var / (count - 1)) * PPL           ("PPL = %.4lf +/- %.5lf")
    """
    n_ctx = PPL_CTX
    ctx = Context(model, n_ctx, n_ctx, C.GGML_TYPE_F32, C.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    add_bos = bool(C.llama_vocab_get_add_bos(model.vocab))
    bos = C.llama_vocab_bos(model.vocab)
    tokens = model.tokenize(text, add_special=True, parse_special=False)
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    running = []
    for c in range(n_chunk):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        ctx.clear()
        lg = ctx.decode(chunk, 0, set(range(first, n_ctx)))
        for i in range(n_ctx - 1 - first):
            v = log_softmax_nll(lg[first + i], tokens[c * n_ctx + first + i + 1])
            nll += v
            nll2 += v * v
        count += n_ctx - 1 - first
        running.append(math.exp(nll / count))
    ctx.free()
    mean = nll / count
    ppl = math.exp(mean)
    var = nll2 / count - mean * mean
    err = math.sqrt(var / (count - 1)) * ppl if var > 0 else None
    return {
        "method": "llama-perplexity default (perplexity.cpp perplexity()), -c 128 -b 128, KV cache F32, flash attention off",
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "n_ctx": n_ctx,
        "add_special": True,
        "parse_special": False,
        "add_bos": add_bos,
        "n_tokens": len(tokens),
        "first_tokens": tokens[:16],
        "n_chunk": n_chunk,
        "scored_per_chunk": n_ctx - 1 - first,
        "count": count,
        "running_ppl": running,
        "nll_mean": mean,
        "ppl": ppl,
        "ppl_stderr": err,
    }


def library_info():
    info = {"llama_cpp_python": llama_cpp.__version__,
            "llama_cpp_version": C.llama_version().decode(),
            "system_info": C.llama_print_system_info().decode().strip()}
    libdir = Path(llama_cpp.__file__).parent / "lib"
    for cand in sorted(libdir.glob("libggml-base.so*")):
        try:
            g = ctypes.CDLL(str(cand))
            g.ggml_version.restype = ctypes.c_char_p
            g.ggml_commit.restype = ctypes.c_char_p
            info["ggml_version"] = g.ggml_version().decode()
            info["ggml_commit"] = g.ggml_commit().decode()
            break
        except (OSError, AttributeError):
            continue
    commit_file = Path(sys.prefix) / "llama.cpp-commit"
    if commit_file.is_file():
        info["llama_cpp_commit"] = commit_file.read_text().strip()
    return info


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--made-by", default=None, help="how MODEL was made (recorded verbatim)")
    ap.add_argument("--text", default=str(ROOT / "LICENSE"), help="perplexity text (default: LICENSE)")
    ap.add_argument("--corpus-ids", metavar="IDS.json", default=None,
                    help="also write llama.cpp's ids (add_special=false, parse_special=false) for every "
                         "line of tests/data/tokenizer_corpus.jsonl: a JSON list with one id list per line")
    ap.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    a = ap.parse_args(argv)
    llama_cpp._logger.set_verbose(a.verbose)
    C.llama_backend_init()

    model_path = Path(a.model)
    m = Model(model_path, extra_bufts=False)
    v = m.vocab
    special_attrs = C.LLAMA_TOKEN_ATTR_UNKNOWN | C.LLAMA_TOKEN_ATTR_CONTROL | C.LLAMA_TOKEN_ATTR_USER_DEFINED
    specials = [t for t in range(m.n_vocab) if C.llama_vocab_get_attr(v, t) & special_attrs][:64]
    vocab = {
        "n_vocab": m.n_vocab,
        "tokenizer_model": m.meta("tokenizer.ggml.model"),
        "bos": C.llama_vocab_bos(v),
        "eos": C.llama_vocab_eos(v),
        "eot": C.llama_vocab_eot(v),
        "add_bos": bool(C.llama_vocab_get_add_bos(v)),
        "add_eos": bool(C.llama_vocab_get_add_eos(v)),
        "eog_ids": [t for t in range(m.n_vocab) if C.llama_vocab_is_eog(v, t)],
        "attr_bits": {"UNDEFINED": 0, "UNKNOWN": 1, "UNUSED": 2, "NORMAL": 4, "CONTROL": 8,
                      "USER_DEFINED": 16, "BYTE": 32, "NORMALIZED": 64, "LSTRIP": 128,
                      "RSTRIP": 256, "SINGLE_WORD": 512},
        "special_tokens": [{"id": t, "text": m.token_text(t), "attr": int(C.llama_vocab_get_attr(v, t)),
                            "is_control": bool(C.llama_vocab_is_control(v, t)),
                            "is_eog": bool(C.llama_vocab_is_eog(v, t))} for t in specials],
    }

    ctx = Context(m, CONTEXT["n_ctx"], CONTEXT["n_batch"], C.GGML_TYPE_F32, C.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    ctx_cli = Context(m, CONTEXT["n_ctx"], CONTEXT["n_batch"], None, None)
    prompts = [run_prompt(m, ctx, ctx_cli, name, text) for name, text in PROMPTS]
    ctx.free()
    ctx_cli.free()

    special_tok = [{"text": s,
                    "parse_special_false": m.tokenize(s, False, False),
                    "parse_special_true": m.tokenize(s, False, True)} for s in SPECIAL_STRINGS]

    raw = Path(a.text).read_bytes()
    text = raw.decode("utf-8")
    if text.endswith("\n"):  # llama-perplexity -f drops one trailing newline (common/arg.cpp)
        text = text[:-1]
    ppl = perplexity(m, text)
    ppl["text_file"] = os.path.relpath(a.text, ROOT)
    ppl["text_file_sha256"] = hashlib.sha256(raw).hexdigest()

    tok = {"add_special": False, "parse_special": False, "corpus": "scripts/reference/corpus.py",
           "cases": [{"text": s, "ids": m.tokenize(s, False, False)} for s in corpus.LINES]}

    if a.corpus_ids:
        raw = CORPUS_JSONL.read_bytes()
        # Lines split on "\n" only, as Rust's str::lines() does (the file has raw U+2028 etc.).
        lines = [json.loads(line.rstrip("\r")) for line in raw.decode("utf-8").split("\n") if line]
        with open(a.corpus_ids, "w", encoding="utf-8") as f:
            f.write("[\n" + ",\n".join(json.dumps(m.tokenize(t, False, False), separators=(",", ":")) for t in lines) + "\n]\n")
        tok["corpus_ids"] = {"file": Path(a.corpus_ids).name,
                             "corpus": str(CORPUS_JSONL.relative_to(ROOT)),
                             "corpus_sha256": hashlib.sha256(raw).hexdigest(),
                             "lines": len(lines), "add_special": False, "parse_special": False}

    out = {
        "generator": {
            "script": "scripts/reference/make_reference.py",
            "args": [os.path.relpath(x, ROOT) if os.path.exists(x) else x for x in argv],
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **library_info(),
        },
        "model": {"file": model_path.name, "size": model_path.stat().st_size,
                  "sha256": sha256(model_path), "made_by": a.made_by},
        "context": CONTEXT,
        "vocab": vocab,
        "prompts": prompts,
        "special_tokenization": special_tok,
        "perplexity": ppl,
        "tokenize": tok,
    }
    C.llama_model_free(m.model)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(dumps(out) + "\n")
    print(f"{a.out}: {os.path.getsize(a.out)} bytes; PPL {ppl['ppl']:.4f} +/- {ppl['ppl_stderr']:.5f}")


if __name__ == "__main__":
    main(sys.argv[1:])
