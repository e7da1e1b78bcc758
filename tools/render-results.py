"""Renders docs/RESULTS.md from the rows tools/demo-results.sh collected (standard library only)."""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
model_bytes, steps = int(sys.argv[2]), int(sys.argv[3])
names = {"base": "base (no training)", "lora": "LoRA r=8 (q,v)", "dora": "DoRA r=8 (q,v)", "ia3": "IA³ (defaults)",
         "prefix": "prefix tuning (20 tokens)", "adalora": "AdaLoRA (init_r 12 → 8)", "full": "full fine-tuning"}
out = ["# Demo results", "",
       "Produced by `bash tools/demo-results.sh` (base: `models/peft-demo`, 6.45 M parameters, bf16 file "
       f"{model_bytes/1e6:.1f} MB). Each method trains {steps} steps × 8 sequences × 128 tokens on the target's train split "
       "(cosine schedule, 10 % warmup, seed 0) and is scored on its validation split (never the test split). "
       "Adapter files are float32 (as PEFT writes them); the full fine-tune is saved in float32 too.", ""]
for target, title in [("moby_dick", "Moby-Dick style"), ("sotu_post1945", "State of the Union after 1945")]:
    tr = [r for r in rows if r["target"] == target]
    base = next(r for r in tr if r["method"] == "base")["eval"]["eval_perplexity"]
    full = next(r for r in tr if r["method"] == "full")["done"]["eval_perplexity"]
    out += [f"## {title}", "", "| method | validation perplexity | share of full fine-tuning's gain | trainable % | file MB | file / model | train s | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|", f"| {names['base']} | {base:.1f} | 0 % | – | – | – | – | – |"]
    for r in tr:
        if r["method"] == "base": continue
        ppl = r["done"]["eval_perplexity"]
        share = (base - ppl) / (base - full) * 100 if base != full else 0
        pct = "100" if r["method"] == "full" else r["summary"].split("trainable%: ")[1]
        mb = r["file_bytes"] / 1e6
        out.append(f"| {names[r['method']]} | {ppl:.1f} | {share:.0f} % | {pct} | {mb:.3f} | {100*r['file_bytes']/model_bytes:.2f} % | "
                   f"{r['done']['elapsed_s']:.0f} | {r['peak_rss_kb']/1024:.0f} |")
    out.append("")
print("\n".join(out))
