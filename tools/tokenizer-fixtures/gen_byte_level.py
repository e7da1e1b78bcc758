#!/usr/bin/env python3
"""Writes Peft.Tests/Fixtures/tokenizers/byte-level/: a pure byte-level tokenizer (stdlib only).

Every UTF-8 byte is one token (ids 0-255 in GPT-2's byte-to-unicode order, no merges) plus
<|endoftext|> = 256. Tiny vocabulary, so a model built on it trains fast in tests.

    python3 tools/tokenizer-fixtures/gen_byte_level.py
"""
import json
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Peft.Tests", "Fixtures", "tokenizers", "byte-level")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def main():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    vocab["<|endoftext|>"] = 256
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True}],
           "normalizer": None, "pre_tokenizer": byte_level,
           "post_processor": dict(byte_level, trim_offsets=False), "decoder": byte_level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": []}}
    os.makedirs(OUT, exist_ok=True)
    files = {
        "tokenizer.json": tok,
        "tokenizer_config.json": {"model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer",
                                  "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                                  "unk_token": "<|endoftext|>"},
    }
    for fn, obj in files.items():
        with open(os.path.join(OUT, fn), "w", encoding="utf-8", newline="\n") as f:
            if fn == "tokenizer.json":
                json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
            else:
                json.dump(obj, f, ensure_ascii=False, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
