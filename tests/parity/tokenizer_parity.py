"""liblora's tokenizer against Hugging Face `tokenizers` on the real Qwen tokenizer
(tests/fixtures/qwen-tokenizer/tokenizer.json).

Seeded random strings in seven kinds, equally many of each: random Unicode, random bytes
decoded leniently, code, CJK, digits, whitespace runs, special-token text. For every string the
ids (add_special_tokens=False, special-token text matched as special tokens) and the decoded
text of those ids (special tokens kept) must be identical. The random bytes are also given to
liblora raw, with LORA_ENCODE_UTF8_REPLACE, against `tokenizers` on Python's
bytes.decode("utf-8", "replace") of them: both replace each maximal invalid subpart by one
U+FFFD (Unicode's recommended practice), so the ids must agree there too.
"""

import json
import os
import random

from tokenizers import Tokenizer as HFTokenizer

from common import TOKENIZER_DIR, liblora

SPACES = ["\t", "\n", "\r", "\r\n", "\v", "\f", " ", "  ", "   ", "\x85", "\xa0", "\u1680",
          "\u2000", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
          "\u200b", "\ufeff"]
WORDS = ("the of and to in is was for that with as on by at it from he she they we you this "
         "be are or an which but not have has had one all their there been if more when will "
         "don't I'm we'll they've it's O'Neil naïve café Zürich résumé").split()
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x52F),
          (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF),
          (0x2000, 0x2BFF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
          (0xFB00, 0xFFFD), (0x10000, 0x1007F), (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF),
          (0x20000, 0x2A6DF), (0xE0000, 0xE007F)]
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x3040, 0x309F), (0x30A0, 0x30FF),
       (0xAC00, 0xD7A3), (0x3000, 0x303F), (0xFF00, 0xFFEF), (0x20000, 0x2A6DF)]
CODE = [
    "def {f}({a}, {b}=None):\n    return {a} ** 2 + {b}  # {w}\n",
    "for (int i = 0; i < {n}; i++) {{\n\tsum += a[i] * b[i];\n}}\r\n",
    "const {f} = ({a}) => {{ console.log(`{w} ${{{a}}}`); }};",
    "SELECT {a}, COUNT(*) FROM {b} WHERE {a} > {n} GROUP BY {a};",
    "<div class=\"{w}\"><a href=\"https://example.com/{f}?q={n}&x=y\">{w}</a></div>",
    "    if {a} != {b}:\n        raise ValueError(f\"{{{a}!r}} is not {{{b}}}\")\n\n\n",
    "#include <stdio.h>\nint main(void) {{ printf(\"%d\\n\", {n}); return 0; }}",
    "$ grep -rn '{w}' src/ | wc -l && echo \"done: {n}\" >> /tmp/{f}.log",
    "fn {f}<'a>(x: &'a str) -> Option<u{n}> {{ x.parse().ok() }}\n",
    "{{\"{a}\": [{n}, {n}.5e-3, null, true], \"{b}\": \"{w}\\u00e9\"}}",
]
IDENT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"


class Gen:
    def __init__(self, seed, specials):
        self.r = random.Random(seed)
        self.specials = specials

    def char(self, ranges):
        lo, hi = self.r.choice(ranges)
        c = self.r.randint(lo, hi)
        return chr(c) if not 0xD800 <= c <= 0xDFFF else "\ufffd"

    def ident(self):
        return self.r.choice(IDENT[:52]) + "".join(self.r.choice(IDENT)
                                                   for _ in range(self.r.randint(0, 8)))

    def unicode(self):
        out = []
        for _ in range(self.r.randint(1, 40)):
            x = self.r.random()
            out.append(self.char(RANGES) if x < 0.6 else self.r.choice(SPACES) if x < 0.8
                       else self.r.choice(WORDS))
        return "".join(out)

    def raw_bytes(self):
        n = self.r.randint(1, 48)
        if self.r.random() < 0.5:
            return bytes(self.r.randint(0, 255) for _ in range(n))
        # valid UTF-8 with a few bytes flipped, cut or inserted: the likely kinds of damage
        b = bytearray(self.unicode().encode("utf-8"))
        for _ in range(self.r.randint(1, 4)):
            if b:
                i = self.r.randrange(len(b))
                b[i] = self.r.choice([0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF8, 0xFF,
                                      self.r.randint(0, 255)])
        return bytes(b[:self.r.randint(1, len(b))]) if b else b"\xff"

    def code(self):
        parts = []
        for _ in range(self.r.randint(1, 3)):
            t = self.r.choice(CODE)
            parts.append(t.format(f=self.ident(), a=self.ident(), b=self.ident(),
                                  w=self.r.choice(WORDS), n=self.r.randint(0, 10 ** 6)))
        return "".join(parts)

    def cjk(self):
        out = []
        for _ in range(self.r.randint(1, 30)):
            x = self.r.random()
            out.append(self.char(CJK) if x < 0.8 else self.r.choice(WORDS + ["，", "。", " "]))
        return "".join(out)

    def digits(self):
        out = []
        for _ in range(self.r.randint(1, 8)):
            x = self.r.random()
            if x < 0.4:
                out.append(str(self.r.randint(0, 10 ** self.r.randint(1, 25))))
            elif x < 0.6:
                out.append("{:,}".format(self.r.randint(0, 10 ** 12)))
            elif x < 0.7:
                out.append("%.*f" % (self.r.randint(0, 6), self.r.uniform(-1e6, 1e6)))
            elif x < 0.8:
                out.append("".join(self.r.choice("٠١٢٣٤٥٦٧٨٩０１２３４５６７８９") for _ in range(4)))
            else:
                out.append(self.r.choice(WORDS + [" ", "-", "+", "x", "e", "/", ":", "."]))
        return "".join(out)

    def whitespace(self):
        out = []
        for _ in range(self.r.randint(1, 12)):
            if self.r.random() < 0.6:
                out.append("".join(self.r.choice(SPACES) for _ in range(self.r.randint(1, 12))))
            else:
                out.append(self.r.choice(WORDS))
        return "".join(out)

    def special(self):
        out = []
        for _ in range(self.r.randint(1, 10)):
            x = self.r.random()
            if x < 0.4:
                out.append(self.r.choice(self.specials))
            elif x < 0.55:  # a special token's text cut short or doubled up
                s = self.r.choice(self.specials)
                out.append(s[:self.r.randint(1, len(s) - 1)] if self.r.random() < 0.5
                           else s[:-1] + s)
            else:
                out.append(self.r.choice(WORDS + SPACES))
        return "".join(out)


KINDS = ["unicode", "bytes, decoded leniently", "code", "cjk", "digits", "whitespace runs",
         "special-token text"]


def run(table, n_strings, seed=0):
    path = os.path.join(TOKENIZER_DIR, "tokenizer.json")
    hf = HFTokenizer.from_file(path)
    with open(path, encoding="utf-8") as f:
        specials = [t["content"] for t in json.load(f)["added_tokens"]]
    ours = liblora.Tokenizer.load(TOKENIZER_DIR)
    gen = Gen(seed, specials)
    makers = [gen.unicode, gen.raw_bytes, gen.code, gen.cjk, gen.digits, gen.whitespace,
              gen.special]
    per_kind = -(-n_strings // len(KINDS))
    for kind, make in zip(KINDS, makers):
        raw = [make() for _ in range(per_kind)]
        texts = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in raw]
        ref_ids = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
        ref_text = hf.decode_batch(ref_ids, skip_special_tokens=False)
        bad_ids, bad_text = [], []
        for text, ids, dec in zip(texts, ref_ids, ref_text):
            mine = list(ours.encode(text))
            if mine != ids:
                bad_ids.append((text, mine, ids))
            elif ours.decode(mine) != dec:
                bad_text.append((text, ours.decode(mine), dec))
        table.add("tokenizer", "%s: ids (%d strings)" % (kind, len(texts)), len(bad_ids), 0,
                  note=first(bad_ids))
        table.add("tokenizer", "%s: decoded text" % kind, len(bad_text), 0, note=first(bad_text))
        if kind.startswith("bytes"):
            bad = [(x, list(ours.encode(x, utf8_replace=True)), ids)
                   for x, ids in zip(raw, ref_ids)
                   if list(ours.encode(x, utf8_replace=True)) != ids]
            table.add("tokenizer", "raw bytes, LORA_ENCODE_UTF8_REPLACE: ids", len(bad), 0,
                      note=first(bad))


def first(bad):
    if not bad:
        return ""
    x, mine, ref = bad[0]
    return "first: %s liblora %s, tokenizers %s" % (ascii(x)[:80], ascii(mine)[:80],
                                                    ascii(ref)[:80])
