"""Renders docs/RESULTS.md from docs/results-runs.jsonl (tools/demo-results.sh) and docs/results-sweep.jsonl
(tools/lr-sweep.sh). Standard library only."""
import json, os, sys

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sweep_path = os.path.join(os.path.dirname(sys.argv[1]), "results-sweep.jsonl")
sweep = [json.loads(l) for l in open(sweep_path) if l.strip()] if os.path.exists(sweep_path) else []
meta = {r["part"]: r for r in runs if "model_bytes" in r}
rows = [r for r in runs if "model_bytes" not in r]

def count(r):  # "trainable params: 43,008 || all params: 6,493,440 || trainable%: 0.6623"
    parts = [p.split(":")[1].strip() for p in r["summary"].split("||")]
    return parts[0], parts[2]

def setting(r):
    a = r["args"].split()
    keep = [f"{a[i]} {a[i+1]}" for i in range(len(a) - 1) if a[i] in ("--r", "--lr", "--target-modules", "--num-virtual-tokens", "--init-r", "--target-r")]
    return ", ".join(k.replace("--", "") for k in keep)

names = {"base": "base (no training)", "lora-qv": "LoRA (PEFT's default targets)", "lora": "LoRA", "dora": "DoRA", "ia3": "IA³", "prefix": "prefix tuning",
         "adalora": "AdaLoRA", "full": "full fine-tuning", "head": "frozen base + head"}
out = ["# Demo results", "",
       "Produced by `bash tools/demo-results.sh` on this repository's 2-core CPU machine; every number below is read from "
       "`docs/results-runs.jsonl`, which that command writes. Settings were either fixed in advance (common defaults) or "
       "chosen on the validation splits (`tools/lr-sweep.sh`, table at the end); perplexity, accuracy and F1 are reported on the test splits, which "
       "nothing was tuned on. Adapter files are float32 (as PEFT writes them); full fine-tunes are saved in float32 too.", ""]
checks = []
if "lm" in meta:
    m = meta["lm"]
    mb = m["model_bytes"]
    out += [f"## Language modelling on `models/peft-demo` ({mb/1e6:.1f} MB bf16 file)", "",
            f"Each method trains {m['steps']} steps × 8 sequences × 128 tokens (about one epoch of the target's train split; "
            "cosine schedule, 10 % warmup, seed 0). Share of gain = (base − method) / (base − full fine-tuning) in test perplexity.", ""]
    for target, title in [("moby_dick", "Moby-Dick style"), ("sotu_post1945", "State of the Union addresses after 1945")]:
        tr = [r for r in rows if r["part"] == "lm" and r["target"] == target]
        if not tr: continue
        base = next(r for r in tr if r["method"] == "base")
        full = next(r for r in tr if r["method"] == "full")
        b, f = base["test"]["eval_perplexity"], full["test"]["eval_perplexity"]
        out += [f"### {title}", "", "| method | settings | trainable params | trainable % | file MB | file / model | validation ppl | test ppl | share of full FT gain | train s | peak RSS MB |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                f"| {names['base']} | – | 0 | 0 | – | – | {base['validation']['eval_perplexity']:.1f} | {b:.1f} | 0 % | – | – |"]
        for r in tr:
            if r["method"] == "base": continue
            n, pct = count(r)
            ppl = r["test"]["eval_perplexity"]
            share = (b - ppl) / (b - f) * 100
            ratio = 100 * r["file_bytes"] / mb
            out.append(f"| {names[r['method']]} | {setting(r)} | {n} | {pct} | {r['file_bytes']/1e6:.3f} | {ratio:.2f} % | "
                       f"{r['done']['eval_perplexity']:.1f} | {ppl:.1f} | {share:.0f} % | {r['done']['elapsed_s']:.0f} | {r['peak_rss_kb']/1024:.0f} |")
            if target == "moby_dick" and r["method"] == "lora":
                checks += [("LoRA recovers ≥ 80 % of full fine-tuning's perplexity gain on Moby-Dick", share >= 80, f"{share:.0f} %"),
                           ("LoRA trains < 2 % of the parameters", float(pct) < 2, f"{pct} %"),
                           ("LoRA adapter file < 2 % of the model file", ratio < 2, f"{ratio:.2f} %")]
        out.append("")
if "spam" in meta:
    m = meta["spam"]
    tr = [r for r in rows if r["part"] == "spam"]
    out += [f"## SpamAssassin classification on MiniLM ({m['model_bytes']/1e6:.1f} MB float32 file)", "",
            "`peft import minilm` (sentence-transformers/all-MiniLM-L6-v2 from the NuGet package, 22.7 M parameters) with a "
            f"sequence-classification head (`--task seq-cls`, labels ham/spam from the data). Each method trains {m['steps']} steps × 16 "
            f"e-mails ({tr[0]['done']['epoch']:.2f} epochs of the 5,460-message train split) cut to 128 tokens (linear schedule, 10 % warmup, seed 0); scored on the held-out validation and test splits.", "",
            "| method | settings | trainable params | trainable % | file MB | validation accuracy | validation F1 | test accuracy | test F1 | train s | peak RSS MB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in tr:
        n, pct = count(r)
        d, t = r["done"], r["test"]
        out.append(f"| {names[r['method']]} | {setting(r)} | {n} | {pct} | {r['file_bytes']/1e6:.3f} | {100*d['eval_accuracy']:.1f} % | "
                   f"{d['eval_f1']:.3f} | {100*t['eval_accuracy']:.1f} % | {t['eval_f1']:.3f} | {d['elapsed_s']:.0f} | {r['peak_rss_kb']/1024:.0f} |")
        if r["method"] == "lora":
            checks.append(("LoRA on MiniLM reaches ≥ 95 % accuracy on SpamAssassin (test)", t["eval_accuracy"] >= 0.95, f"{100*t['eval_accuracy']:.1f} %"))
    out += ["", "F1 is the macro average over ham and spam (sklearn's `average=\"macro\"`).", ""]
if "qlora" in meta:
    m = meta["qlora"]
    tr = [r for r in rows if r["part"] == "qlora"]
    base = next(r for r in tr if r["method"] == "base")
    bl = base["validation"]["eval_loss"]
    out += ["## QLoRA against bf16 LoRA on `models/peft-demo`", "",
            f"Moby-Dick style, the same data, schedule and seed as above ({m['steps']} steps × 8 × 128 tokens). `bf16`: the frozen base "
            "in bfloat16 (`--bf16`). `NF4 + DQ`: the base's linear weights quantised at load time to NF4 with double quantisation, "
            "bfloat16 matmuls, norms/embeddings/head float32 after `PrepareForKbitTraining` (`--bf16 --quantize nf4 --double-quant`). "
            "Adapters are float32 in both. Drop = base validation loss − adapter validation loss.", "",
            "| LoRA | base weights | trainable params | validation loss | drop | QLoRA drop / bf16 drop | train s | peak RSS MB |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            f"| – (no training) | bf16 | 0 | {bl:.4f} | – | – | – | – |"]
    for name in ("lora-qv", "lora"):
        pair = {r["method"].rsplit("-", 1)[1]: r for r in tr if r["method"].startswith(name + "-") and r["method"].count("-") == name.count("-") + 1}
        if set(pair) != {"bf16", "nf4dq"}: continue
        drops = {k: bl - r["done"]["eval_loss"] for k, r in pair.items()}
        ratio = drops["nf4dq"] / drops["bf16"]
        for k, label in (("bf16", "bf16"), ("nf4dq", "NF4 + DQ")):
            r = pair[k]
            n, _ = count(r)
            out.append(f"| {names[name]}: {setting(r)} | {label} | {n} | {r['done']['eval_loss']:.4f} | {drops[k]:.4f} | "
                       f"{'' if k == 'bf16' else f'{100*ratio:.1f} %'} | {r['done']['elapsed_s']:.0f} | {r['peak_rss_kb']/1024:.0f} |")
        checks.append((f"QLoRA's validation-loss drop within 5 % of bf16 LoRA's ({names[name]})", abs(ratio - 1) <= 0.05,
                       f"{drops['nf4dq']:.4f} vs {drops['bf16']:.4f} ({100*(ratio-1):+.1f} %)"))
    out += ["", "Peak RSS is the whole `peft train` process; on a 6.5 M-parameter model the runtime and activations dwarf the "
            "weights, so it says little about QLoRA's saving. The memory comparison is `peft bench quant` in `docs/BENCHMARKS.md`.", ""]
if checks:
    out += ["## Targets", "", "| target | met | measured |", "|---|---|---:|"]
    out += [f"| {c} | {'yes' if ok else '**no**'} | {v} |" for c, ok, v in checks]
    out.append("")
if "lm" in meta:
    out += ["## Reading the numbers", "",
            "- **Where LoRA goes matters more than its rank.** On this 6.5 M-parameter model PEFT's default Llama targets "
            "(`q_proj`, `v_proj`) recover well under half of full fine-tuning's gain; the sweep found that an adapter on the "
            "output head (`lm_head`, tied to the embeddings here) plus `down_proj` does far better at a similar size, because a "
            "new style of English is mostly new word statistics, which the output projection carries.",
            ("- **The 80 % target is met** on Moby-Dick (see Targets)." if all(ok for c, ok, v in checks if "80 %" in c) else
            "- **The 80 % target is not met** (Moby-Dick: see Targets). The gap is capacity, not an under-trained adapter: "
            "in the 900-step sweep rows LoRA improves, but full fine-tuning improves more, so its share does not grow. "
            "A model this small has little general knowledge for a low-rank update to steer; PEFT's published parity with "
            "full fine-tuning is for models with 10⁸–10¹¹ parameters. The test split was never used to choose anything."),
            "- **An adapter on a tied head cannot be merged**: `peft merge` refuses it (merging would rewrite the input "
            "embeddings too); it is served unmerged, like every hub adapter.",
            "- Peak RSS is `/usr/bin/time`'s maximum for the whole `peft train` process (runtime, tokenizer, data and model).", ""]
if sweep:
    out += ["## Settings sweep (validation split only)", "",
            "`bash tools/lr-sweep.sh tools/lr-sweep.txt`: each line of the spec trained once and scored on the validation split; "
            "the settings above were picked from these rows (the Moby-Dick choices are reused unchanged for the addresses).", "",
            "| target | run | steps | settings | trainable % | validation score |", "|---|---|---:|---|---:|---:|"]
    for s in sweep:
        d = s["done"]
        score = f"ppl {d['eval_perplexity']:.1f}" if "eval_perplexity" in d else f"accuracy {100*d['eval_accuracy']:.1f} %, F1 {d['eval_f1']:.3f}"
        out.append(f"| {s['target']} | {s['name']} | {s['steps']} | `{s['args']}` | {s['trainable_pct']} | {score} |")
    out.append("")
print("\n".join(out))
