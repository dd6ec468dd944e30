#!/usr/bin/env python3
"""Reference data for Orcinus' tokenizer tests (tests/tokenizer_spm.rs).

    tokenizer_ref.py corpus                 print the test corpus (JSON lines, one string each)
    tokenizer_ref.py spm MODEL CORPUS [TEXT...]
                                            vocabulary of a SentencePiece MODEL as GGUF would hold
                                            it, and sentencepiece's ids and text for every line
                                            of CORPUS and every TEXT, as one JSON object

`spm` maps SentencePiece piece types to GGUF token types the way llama.cpp's converters do
(NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6) and appends `<|im_end|>`
(id 32000) and `<|im_start|>` (32001) as user-defined tokens with score -1000, like TheBloke's
Mistral-7B-OpenOrca GGUF files. Ids are `sp.encode(line)`: no BOS, with the dummy prefix.

The corpus is generated deterministically (fixed seed, no external data); the committed copy is
tests/data/tokenizer_corpus.jsonl and a test checks that this script still reproduces it.
"""

import json
import random
import sys

SEED = 20240601

WORDS = (
    "the of and to in is was he for it with as his on be at by had are but from or have an they "
    "which one you were all her she there would their we him been has when who will no more if out "
    "so up said what its about than into them can only other time new some could these two may "
    "first then do any like my now over such our man me even most made after also did many off "
    "before must well back through years much where your way down should because each just those "
    "people how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old year come "
    "since against go came right used take three tokenizer model inference quantization matrix "
    "vector kernel weights attention transformer Mistral Orca llama GGUF Rust memory cache"
).split()
CONTRACTIONS = ["don't", "it's", "I'm", "we're", "they've", "she'll", "he'd", "can't", "O'Brien", "rock'n'roll"]
PUNCT = list(".,;:!?") + ["...", " -", " --", "—", "–", "…"]
CHINESE = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长"
HIRAGANA = [chr(c) for c in range(0x3041, 0x3097)]
KATAKANA = [chr(c) for c in range(0x30A1, 0x30FB)]
HANGUL = (0xAC00, 0xD7A3)
ARABIC = [chr(c) for c in range(0x0621, 0x064B)]
HEBREW = [chr(c) for c in range(0x05D0, 0x05EB)]
CYRILLIC = [chr(c) for c in range(0x0410, 0x0450)]
GREEK = [chr(c) for c in range(0x0391, 0x03CA) if c != 0x03A2]
DEVANAGARI = [chr(c) for c in range(0x0905, 0x093A)]
THAI = [chr(c) for c in range(0x0E01, 0x0E2F)]
EUROPEAN = (
    "café naïve résumé über Straße Mädchen Größe façade jalapeño niño señor año déjà vu Ærø Øre "
    "Łódź Kraków żółć źdźbło Tiếng Việt người Hà Nội phở đường İstanbul ağaç şeker çiçek "
    "Ελληνικά αλφάβητο Москва привет спасибо"
).split()
EMOJI = [
    "😀", "😂", "🥲", "🤖", "🦀", "🐳", "🎉", "🚀", "❤️", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷",
    "🇯🇵", "1️⃣", "#️⃣", "☕", "⚡", "✅", "❌", "🧪", "🫠", "🪐", "🤌🏿", "🧑🏻‍🚀", "🐈‍⬛", "©", "™",
]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u200e", "\u200f", "\u202e", "\u202c"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", " \t ", "\u00a0", "\u3000", "\u2002", "\u2009", "\u202f", "\u2028", "\u0085"]
CONTROL = [chr(c) for c in list(range(0x00, 0x09)) + [0x0B, 0x0C] + list(range(0x0E, 0x20)) + [0x7F]] + [
    chr(c) for c in range(0x80, 0xA0)
]
RARE_BLOCKS = [
    (0x10000, 0x1005D),  # Linear B
    (0x13000, 0x1342E),  # Egyptian hieroglyphs
    (0x1D400, 0x1D7FF),  # mathematical alphanumerics
    (0xE000, 0xF8FF),  # private use
    (0xF0000, 0xF00FF),  # supplementary private use
    (0x1D100, 0x1D1E8),  # musical symbols
    (0x0F40, 0x0F6C),  # Tibetan
    (0x13A0, 0x13F5),  # Cherokee
    (0x16A0, 0x16F0),  # Runic
    (0x2500, 0x257F),  # box drawing
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # math operators
    (0x1F300, 0x1F5FF),  # pictographs
    (0x20000, 0x2A6DF),  # CJK extension B
    (0x0300, 0x036F),  # combining marks
    (0xFFF0, 0xFFFF),  # specials, including noncharacters
    (0x1F000, 0x1F02B),  # mahjong tiles
    (0x0700, 0x074A),  # Syriac
    (0x1200, 0x137C),  # Ethiopic
    (0xA000, 0xA48C),  # Yi
]
SPECIAL_LIKE = [
    "<s>", "</s>", "<unk>", "<0x41>", "<0x0A>", "<|im_start|>", "<|im_end|>", "[INST]", "[/INST]",
    "<|endoftext|>", "▁", "▁▁", "<<SYS>>", "</", "<|", "|>",
]


def pick_rare(r):
    lo, hi = r.choice(RARE_BLOCKS)
    return chr(r.randint(lo, hi))


def word(r):
    w = r.choice(WORDS)
    roll = r.random()
    if roll < 0.08:
        return w.capitalize()
    if roll < 0.11:
        return w.upper()
    if roll < 0.16:
        return r.choice(CONTRACTIONS)
    return w


def sentence(r, n_min=3, n_max=25):
    words = [word(r) for _ in range(r.randint(n_min, n_max))]
    words[0] = words[0].capitalize()
    out = []
    for w in words:
        out.append(w)
        if r.random() < 0.1:
            out[-1] += r.choice(PUNCT[:6])
    s = " ".join(out)
    if r.random() < 0.15:
        s = '"' + s + '"'
    if r.random() < 0.15:
        s += " (" + str(r.randint(0, 2025)) + ")"
    return s + r.choice([".", ".", ".", "!", "?", "...", ""])


def prose(r):
    return " ".join(sentence(r) for _ in range(r.randint(1, 3)))


IDENTS = ["x", "y", "i", "n", "buf", "tokens", "ids", "self", "vocab", "scores", "len", "out", "q8_0", "Tensor", "HashMap"]


def code(r):
    ind = r.choice(["", "    ", "        ", "\t", "\t\t", "  ", "            "])
    a, b, c = r.choice(IDENTS), r.choice(IDENTS), r.choice(IDENTS)
    n = r.randint(0, 100000)
    templates = [
        f"{ind}let {a} = {b}.iter().map(|v| v * {n}).collect::<Vec<_>>();",
        f"{ind}for {a} in range({n}):\n{ind}    {b}.append({c}[{a}] ** 2)",
        f"{ind}if ({a} != {b} && {c} >= 0x{n:x}) {{ return -1; }}",
        f"{ind}def {a}_{b}(self, {c}: int = {n}) -> None:",
        f'{ind}printf("%d %s\\n", {a}, "{b}");  // {sentence(r, 2, 6)}',
        f"{ind}# {sentence(r, 2, 10)}",
        f"{ind}{a}[{n % 17}] += {b} << 2 | {c} >> 3; /* {word(r)} */",
        f"{ind}}}\n{ind}else {{\n{ind}    {a}++;",
        f"{ind}<div class=\"{a}\">{sentence(r, 1, 5)}</div>",
        f"{ind}SELECT {a}, COUNT(*) FROM {b} WHERE {c} > {n} GROUP BY {a};",
        f"{ind}{a} := map[string]int{{\"{b}\": {n}}}",
        f"{ind}#include <{a}.h>",
        f"{ind}@{a}.{b}(\"{c}\")",
        f"{ind}x = lambda {a}, {b}: {a}**{b} if {a} else None  # {n}",
    ]
    return r.choice(templates)


def whitespace(r):
    parts = []
    for _ in range(r.randint(0, 8)):
        parts.append(r.choice([word(r), word(r), r.choice(SPACES), "\n", "\r\n", "\n\n", " \n ", r.choice(PUNCT)]))
    s = "".join(p if i == 0 else r.choice(SPACES + [" "] * 6) + p for i, p in enumerate(parts))
    if r.random() < 0.4:
        s = r.choice(SPACES) + s
    if r.random() < 0.4:
        s = s + r.choice(SPACES)
    return s


def numbers(r):
    forms = [
        lambda: str(r.randint(0, 10 ** r.randint(1, 18))),
        lambda: f"{r.uniform(-1e6, 1e6):.{r.randint(0, 6)}f}",
        lambda: f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1900, 2100)}",
        lambda: f"+1 ({r.randint(100, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}",
        lambda: f"0x{r.getrandbits(32):08X}",
        lambda: f"{r.randint(0, 10**9):,}",
        lambda: "".join(chr(0x0660 + r.randint(0, 9)) for _ in range(r.randint(1, 6))),
        lambda: "".join(chr(0x0966 + r.randint(0, 9)) for _ in range(r.randint(1, 6))),
        lambda: "".join(chr(0xFF10 + r.randint(0, 9)) for _ in range(r.randint(1, 6))),
        lambda: r.choice(["½", "¾", "²", "³", "Ⅻ", "ⅷ", "①", "⑳", "𝟗"]) * r.randint(1, 3),
        lambda: f"{r.randint(0, 999)}.{r.randint(0, 999)}.{r.randint(0, 999)}.{r.randint(0, 255)}",
        lambda: f"{r.random():e}",
    ]
    k = r.randint(1, 4)
    return r.choice(["", "Total: ", "n=", "v", "# "]) + " ".join(r.choice(forms)() for _ in range(k))


def cjk(r):
    kind = r.randint(0, 4)
    n = r.randint(1, 30)
    if kind == 0:
        s = "".join(r.choice(CHINESE) for _ in range(n))
    elif kind == 1:
        s = "".join(r.choice(HIRAGANA + KATAKANA + list(CHINESE[:40])) for _ in range(n))
    elif kind == 2:
        s = "".join(chr(r.randint(*HANGUL)) if r.random() < 0.85 else " " for _ in range(n))
    elif kind == 3:
        s = "".join(chr(r.randint(0x4E00, 0x9FFF)) for _ in range(n))  # many rare: byte fallback
    else:
        s = sentence(r, 2, 6) + " " + "".join(r.choice(CHINESE) for _ in range(n)) + "。"
    if r.random() < 0.3:
        s += r.choice(["，", "、", "！", "？", "「", "」", "（", "）"]) + "".join(r.choice(CHINESE) for _ in range(3))
    return s


def emoji(r):
    parts = []
    for _ in range(r.randint(1, 10)):
        parts.append(r.choice(EMOJI) if r.random() < 0.6 else word(r))
    return r.choice(["", " "]).join(parts)


def european(r):
    kind = r.randint(0, 3)
    if kind == 0:
        return " ".join(r.choice(EUROPEAN) for _ in range(r.randint(1, 12)))
    if kind == 1:  # decomposed (NFD-style) letters: base + combining marks
        return "".join(r.choice("aeiouncAEIOU") + chr(r.randint(0x0300, 0x036F)) * r.randint(1, 2) for _ in range(r.randint(1, 8)))
    if kind == 2:
        return "".join(r.choice(GREEK + CYRILLIC + [" "] * 8) for _ in range(r.randint(1, 40)))
    return "".join(r.choice(DEVANAGARI + THAI + [" "] * 5) for _ in range(r.randint(1, 30)))


def rtl(r):
    letters = ARABIC if r.random() < 0.5 else HEBREW
    words = ["".join(r.choice(letters) for _ in range(r.randint(2, 8))) for _ in range(r.randint(1, 8))]
    if r.random() < 0.4:
        words.insert(r.randint(0, len(words)), word(r))
    if r.random() < 0.3:
        words.insert(r.randint(0, len(words)), str(r.randint(0, 9999)))
    s = " ".join(words)
    if r.random() < 0.2:
        s = r.choice(["\u200f", "\u202b", "\u202e"]) + s + "\u202c"
    return s + r.choice(["", ".", "؟", "،", "!"])


def control(r):
    s = sentence(r, 1, 8)
    for _ in range(r.randint(1, 4)):
        i = r.randint(0, len(s))
        s = s[:i] + r.choice(CONTROL + ZERO_WIDTH) + s[i:]
    return s


def rare(r):
    return "".join(pick_rare(r) if r.random() < 0.7 else r.choice([" ", word(r)]) for _ in range(r.randint(1, 12)))


def mixed(r):
    pools = [
        lambda: r.choice(WORDS),
        lambda: r.choice(CHINESE),
        lambda: r.choice(EMOJI),
        lambda: r.choice(SPACES),
        lambda: r.choice(CONTROL),
        lambda: pick_rare(r),
        lambda: r.choice(ARABIC + HEBREW + GREEK + CYRILLIC),
        lambda: r.choice(PUNCT),
        lambda: str(r.randint(0, 999)),
        lambda: chr(r.randint(0x20, 0x7E)),
        lambda: chr(r.randint(0xA0, 0x2FFF)),
    ]
    return "".join(r.choice(pools)() for _ in range(r.randint(1, 40)))


def special_like(r):
    parts = [r.choice(SPECIAL_LIKE) if r.random() < 0.5 else word(r) for _ in range(r.randint(1, 6))]
    return r.choice(["", " ", "\n"]).join(parts)


CATEGORIES = [
    (prose, 1200),
    (code, 800),
    (whitespace, 400),
    (numbers, 300),
    (cjk, 400),
    (emoji, 300),
    (european, 300),
    (rtl, 300),
    (control, 200),
    (rare, 400),
    (mixed, 400),
    (special_like, 100),
]

FIXED = ["", " ", "  ", "\t", "\n", "a", " a", "a ", "Hello world", " Hello world", "Hello  world", "\u00a0", "\x00"]


def corpus():
    r = random.Random(SEED)
    lines = list(FIXED)
    for gen, count in CATEGORIES:
        lines.extend(gen(r) for _ in range(count))
    return lines


def cmd_corpus():
    out = sys.stdout
    for line in corpus():
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


def cmd_spm(model, corpus_path, extra):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)
    n = sp.get_piece_size()
    pieces, scores, types = [], [], []
    for i in range(n):
        pieces.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_unused(i):
            t = 5
        elif sp.is_byte(i):
            t = 6
        else:
            t = 1
        types.append(t)
    for added in ["<|im_end|>", "<|im_start|>"]:
        pieces.append(added)
        scores.append(-1000.0)
        types.append(4)
    with open(corpus_path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    ids = [sp.encode(line) for line in lines]
    json.dump(
        {
            "pieces": pieces,
            "scores": scores,
            "types": types,
            "bos": sp.bos_id(),
            "eos": sp.eos_id(),
            "unk": sp.unk_id(),
            "lines": lines,
            "ids": ids,
            "decoded": [sp.decode(x) for x in ids],
            "extra": extra,
            "extra_ids": [sp.encode(t) for t in extra],
        },
        sys.stdout,
        ensure_ascii=True,
    )


def main():
    args = sys.argv[1:]
    if args == ["corpus"]:
        cmd_corpus()
    elif len(args) >= 3 and args[0] == "spm":
        cmd_spm(args[1], args[2], args[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
