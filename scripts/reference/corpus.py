"""The fixed tokenizer corpus for scripts/reference/make_reference.py: about 300 short lines
of English, code, whitespace runs, digits, CJK, emoji, accents, RTL scripts and token-like
strings. Deterministic: a hand-written list, then lines built from it by fixed rules.
Changing it changes every reference file's `tokenize` section, so append rather than edit."""

HAND = [
    # English prose, punctuation, contractions (the gpt2 pre-tokenizer splits 's 't 're 've 'm 'll 'd)
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
    "the quick brown fox",
    "I'm sure you're right; we'll see what they've done, won't we?",
    "It's John's book, isn't it? He'd know.",
    "I'M SHOUTING AND IT'S LOUD",
    "\"Quoted text,\" she said. 'Single quotes' too.",
    "Mr. and Mrs. Smith arrived at 10 a.m. (sharp).",
    "e.g. i.e. etc. vs. U.S.A.",
    "Wait... what?! No way!!!",
    "semi;colon:colon,comma.period",
    "under_score and hyphen-ated and slash/separated",
    "email@example.com and https://example.org/path?q=1&r=two#frag",
    "What is the capital of France?",
    "The capital of France is Paris.",
    "Once upon a time, in a land far, far away, there lived a tiny model.",
    "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "a",
    "A",
    "I",
    "ab",
    "abc abc abc abc",
    "tokenization tokenizer tokenize tokens token",
    "Don't stop believing",
    "O'Neill's co-operation re-entered",
    "# Heading\n\n- item one\n- item two\n\n**bold** _italic_ `code`",
    "> quoted line\n>> nested quote",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "[link](https://example.com) ![img](a.png)",
    # code
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)",
    "for i in range(10):\n\tprint(i)",
    "fn main() {\n    println!(\"Hello, {}!\", name);\n}",
    "let v: Vec<u8> = vec![0; 1 << 20];",
    "impl<T: Clone + Send> Foo<T> for Bar<'a> where T: 'static {}",
    "#include <stdio.h>\nint main(void) { return 0; }",
    "x += 1; y -= 2; z *= 3; w /= 4; a %= 5; b <<= 6; c >>= 7;",
    "if (a == b && c != d || !e) { f(); }",
    "const arrowFn = (a, b) => a ?? b?.c;",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "{\"key\": \"value\", \"n\": [1, 2, 3], \"ok\": true, \"none\": null}",
    "<div class=\"main\"><p>Hello &amp; welcome</p></div>",
    "#!/usr/bin/env bash\nset -euo pipefail\necho \"$HOME\" | grep -v '^#' > /dev/null 2>&1",
    "^\\s*(\\d{3})-(\\d{4})$",
    "git commit -m \"fix: off-by-one in tokenizer\"",
    "a_b_c __init__ __main__ self.__dict__",
    "camelCaseIdentifier PascalCaseType snake_case_name SCREAMING_SNAKE",
    "0x1F 0xdeadbeef 0b1010 0o777 1e-5 6.02e23 -3.5f",
    "matrix[i][j] = matrix[j][i] * 2.0;",
    "    indented four spaces",
    "\tindented with a tab",
    "        eight spaces then code()",
    "print('tabs\\tand\\nescapes')",
    "```python\nimport numpy as np\n```",
    "// comment\n/* block */\n# hash comment\n-- sql comment",
    # whitespace
    "",
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n",
    "\n\n\n",
    "\t",
    "\t\t",
    " \n ",
    "\r\n",
    "line one\r\nline two\r\n",
    "trailing space ",
    " leading space",
    "  two leading spaces",
    "word\n",
    "\nword",
    "a  b   c    d     e",
    "a\tb\t\tc",
    "end.\n\nNew paragraph.",
    "mixed \t \n whitespace \n\t ",
    "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth\u200bspace",
    "\ufeffBOM at start",
    "ideographic\u3000space",
    # digits and numbers
    "0",
    "7",
    "42",
    "123",
    "1234",
    "12345",
    "123456789",
    "12345678901234567890",
    "3.14159265358979",
    "1,000,000",
    "1.000.000,50",
    "-273.15",
    "+1 (555) 123-4567",
    "2026-01-26T17:40:00Z",
    "10:30 pm",
    "$1,234.56 and €99 and £7 and ¥500",
    "50% off, 3/4 cup, 2^10 = 1024",
    "v1.2.3-rc.4+build.567",
    "Room 101, Floor 3, Building 42B",
    "1st 2nd 3rd 4th 21st 100th",
    "IPv4 192.168.0.1 and IPv6 ::1",
    "007 0007 00000",
    "٠١٢٣٤٥٦٧٨٩ (Arabic-Indic digits)",
    "१२३ (Devanagari digits)",
    "１２３ (fullwidth digits)",
    "Ⅻ ⅻ ½ ¾ ² ³",
    # CJK
    "你好，世界！",
    "我爱自然语言处理。",
    "中华人民共和国",
    "北京是中国的首都。",
    "こんにちは世界",
    "日本語のテキストです。カタカナとひらがな。",
    "東京タワー",
    "ｱｲｳｴｵ halfwidth katakana",
    "안녕하세요 세계",
    "한국어 텍스트입니다.",
    "漢字かな交じり文",
    "中文English混合text",
    "「引用」『二重引用』【括弧】",
    # emoji
    "😀",
    "Hello 👋 world 🌍",
    "🚀🚀🚀",
    "👨‍👩‍👧‍👦 family",
    "👍🏽 thumbs up medium skin",
    "🇫🇷 🇯🇵 🇺🇸 flags",
    "❤️ red heart with variation selector",
    "🤖 + 🧠 = ✨",
    "emoji at end 🎉",
    "🎉emoji at start",
    "☕️ coffee ♨ hot",
    "⌚⏰⏳ time",
    # accents and Latin extensions
    "café crème brûlée",
    "naïve coöperate résumé",
    "Ça va? Où est la bibliothèque?",
    "Größe Straße Übermäßig",
    "El niño comió jalapeños en España.",
    "São Paulo, Açaí, Coração",
    "Tiếng Việt có dấu: Hà Nội, Sài Gòn",
    "Łódź Kraków Gdańsk Źdźbło",
    "Dvořák Čeština Šťastný",
    "Þórr Ægir Øresund Åland",
    "İstanbul ılık Şişli Ğ",
    "e\u0301 (e + combining acute)",
    "n\u0303 a\u0308 o\u0302",
    "ﬁ ﬂ ligatures",
    "Ⓐⓑⓒ circled",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
    # RTL and other scripts
    "مرحبا بالعالم",
    "اللغة العربية جميلة.",
    "שלום עולם",
    "עברית מימין לשמאל",
    "English then عربي then English",
    "(مثال) [דוגמה]",
    "\u202eright-to-left override\u202c",
    "Привет, мир!",
    "Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε",
    "Η γρήγορη καφέ αλεπού",
    "สวัสดีชาวโลก",
    "नमस्ते दुनिया",
    "வணக்கம் உலகம்",
    "გამარჯობა მსოფლიო",
    "Բարեւ աշխարհ",
    "ሰላም ልዑል",
    "ᚠᚢᚦᚨᚱᚲ runes",
    # token-like strings (must stay plain text: parse_special is false here)
    "<s>",
    "</s>",
    "<unk>",
    "<s> text after bos-like string",
    "text before </s>",
    "<|im_start|>",
    "<|im_end|>",
    "<|im_start|>user\nHi<|im_end|>",
    "<|endoftext|>",
    "<|end|> <|eot_id|>",
    "<0x41> <0x0A>",
    "[INST] hello [/INST]",
    "<<SYS>>\nsystem\n<</SYS>>",
    "▁ (U+2581 lower one eighth block)",
    "Ġ Ċ (gpt2 byte-level markers)",
    # control and odd bytes
    "\x01\x02\x03",
    "bell\x07tab\x0bform\x0c",
    "del\x7fchar",
    "\u0085next line",
    "\u2028line separator\u2029paragraph separator",
    "\ufffd replacement char",
    "\U0010fffd private plane",
    # repeated characters
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!!!!!!!!",
    "??????",
    "..........",
    "----------------------------------------",
    "==========",
    "__________",
    "**********",
    "##########",
    "~~~~~",
    "ababababababababab",
    "1111111111111111",
    "ha ha ha ha ha ha",
    "lol" * 10,
]

# Lines built by rule from small seeds, so whitespace runs, digit lengths and script
# boundaries are covered systematically.
_WORDS = ["hello", "Hello", "HELLO", "world", "data", "ünïcödé", "日本", "мир", "عالم", "🙂", "42", "x"]


def _built():
    out = []
    for n in range(1, 9):
        out.append(" " * n + "x")
        out.append("x" + " " * n + "y")
        out.append("x" + " " * n)
        out.append("\n" * n + "z")
    for n in range(1, 5):
        out.append("\t" * n + "tab")
        out.append("a" + "\t" * n + "b")
        out.append(" \n" * n)
    for n in range(1, 17):
        out.append("".join(str((7 * i + 3) % 10) for i in range(n)))
    for n in (1, 2, 3, 4, 5, 8):
        out.append(f"abc{'9' * n}def")
        out.append(f"{'5' * n}.{'0' * n}")
    for i, w in enumerate(_WORDS):
        out.append(w)
        out.append(" " + w)
        out.append(w + " " + _WORDS[(i + 5) % len(_WORDS)])
        out.append(w + _WORDS[(i + 7) % len(_WORDS)])
        out.append("(" + w + ")")
        out.append(w + "\n" + w)
    return out


LINES = list(dict.fromkeys(HAND + _built()))  # first occurrence kept, order fixed
