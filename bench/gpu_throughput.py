"""Janus-Pro throughput on one accelerator (not a test): our adapter against a bare transformers loop.

Janus-Pro-1B- and 7B-shaped models are built from their configurations with random weights (nothing to download),
saved as a Hugging Face folder and loaded by the `janus` adapter exactly as real weights are. For each batch size:
  * understanding: questions/s on 384x384 images with short answers (prefill-bound, like VQAv2), our adapter vs
    `model.generate` on the same batches; achieved TFLOP/s (model FLOPs estimate: 2 x parameters x tokens for the
    LM and the vision encoder) and the fraction of the card's peak;
  * generation: images/s with classifier-free guidance (576 image tokens each, then the VQ decoder), our adapter vs
    `model.generate(generation_mode="image")` + `decode_image_tokens`;
  * peak accelerator memory.
Projections against the targets for the 7B shape on one H100: GenEval's 2,212 images <= 5 minutes, VQAv2 val's
214,354 questions <= 60 minutes, our adapter within 5% of the bare loop.

    python bench/gpu_throughput.py --shape 7b                     # on a GPU (about 6 minutes on an H100)
    python bench/gpu_throughput.py --shape 1b --batch-sizes 8,32,64
    python bench/gpu_throughput.py --shape tiny --device cpu      # CPU, tiny config (a test runs this)
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Janus-Pro's published shapes (LM, SigLIP-L vision encoder at 384 px, VQ tokenizer with 16,384 codes)
SHAPES = {
    "7b": dict(hidden=4096, layers=30, heads=32, kv_heads=32, intermediate=11008, vocab_size=102400,
               vision_hidden=1024, vision_layers=24, vision_heads=16, image_size=384, patch=16, vq_embed=8,
               codes=16384, vq_base=128, vq_latent=256, vq_res_blocks=2, multiplier=(1, 1, 2, 2, 4),
               max_positions=4096),
    "1b": dict(hidden=2048, layers=24, heads=16, kv_heads=16, intermediate=5632, vocab_size=102400,
               vision_hidden=1024, vision_layers=24, vision_heads=16, image_size=384, patch=16, vq_embed=8,
               codes=16384, vq_base=128, vq_latent=256, vq_res_blocks=2, multiplier=(1, 1, 2, 2, 4),
               max_positions=4096),
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, image_size=32, patch=8, vision_hidden=32,
                 vision_layers=1, codes=64, vq_base=32, vq_latent=32, max_positions=256),
}
#: dense bf16 peak TFLOP/s by card name fragment (vendor data sheets, SXM parts)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
GENEVAL_IMAGES, VQAV2_QUESTIONS = 2212, 214354
ANSWER_TOKENS = 8


def build_folder(shape: str, folder: Path, dtype) -> Path:
    import torch
    from transformers import JanusForConditionalGeneration

    from tinyfactory.build import TEST_WORDS, build_config, build_processor, build_tokenizer, generation_config, \
        words_of

    tok = build_tokenizer(words_of([TEST_WORDS, "what color is the object in the picture answer yes no"]))
    config = build_config(tok, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = JanusForConditionalGeneration(config).to(dtype)
    model.generation_config = generation_config(tok)
    model.save_pretrained(folder)
    build_processor(tok, config.vision_config.image_size, config.vision_config.num_image_tokens).save_pretrained(folder)
    del model
    return folder


def requests(kind: str, n: int, size: int):
    from PIL import Image as PILImage

    from harness.task import generate, understand

    if kind == "understand":
        return [understand("what color is the object in the picture", [PILImage.new("RGB", (size, size), (i % 256,
                           (3 * i) % 256, 90))], max_new_tokens=ANSWER_TOKENS).replace(seed=i) for i in range(n)]
    return [generate(f"a picture number {i}").replace(seed=i) for i in range(n)]


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_understand(model, processor, batch, device) -> None:
    import torch

    from harness.models.janus_prompts import understanding_prompt

    enc = processor(text=[understanding_prompt(processor, r.text, 1) for r in batch],
                    images=[r.images[0].pil() for r in batch], return_tensors="pt", padding=True).to(device)
    enc["pixel_values"] = enc["pixel_values"].to(model.dtype)
    config = copy.deepcopy(model.generation_config)
    config.update(max_new_tokens=ANSWER_TOKENS, max_length=None, do_sample=False)
    with torch.inference_mode():
        model.generate(**enc, generation_config=config, generation_mode="text")


def bare_generate(model, processor, batch, device) -> None:
    import torch

    from harness.models.janus_prompts import generation_prompt

    enc = processor(text=[generation_prompt(processor, r.text) for r in batch], generation_mode="image",
                    return_tensors="pt", padding=True).to(device)
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=True, guidance_scale=5.0)
    with torch.inference_mode():
        codes = model.generate(**enc, generation_config=config, generation_mode="image")
        model.decode_image_tokens(codes)


def timed(fn, batches, device) -> float:
    fn(batches[0])                 # warm-up (kernels, caches)
    sync(device)
    t0 = time.perf_counter()
    for b in batches:
        fn(b)
    sync(device)
    return time.perf_counter() - t0


def lm_and_vision_params(model) -> tuple[int, int]:
    lm = sum(p.numel() for p in model.model.language_model.parameters())
    vision = sum(p.numel() for p in model.model.vision_model.parameters())
    return lm, vision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on GPUs, float32 on CPUs")
    ap.add_argument("--batch-sizes", default=None, help="comma-separated (default 8,32,64 on GPU; 2,4 on CPU)")
    ap.add_argument("--batches", type=int, default=3, help="timed batches per measurement (after one warm-up)")
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from harness.models import resolve_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    dtype = getattr(torch, dtype_name)
    sizes = [int(b) for b in (args.batch_sizes or ("8,32,64" if device.startswith("cuda") else "2,4")).split(",")]
    card = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in card), None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(args.shape, Path(tmp) / f"janus-pro-{args.shape}-random", dtype)
        adapter = resolve_model(str(folder), {"device": device, "dtype": dtype_name})
        model, processor = adapter.load()
        size = model.config.vision_config.image_size
        lm, vision = lm_and_vision_params(model)
        print(f"{args.shape} shape, random weights: LM {lm / 1e9:.2f}B, vision {vision / 1e9:.2f}B parameters; "
              f"{card}, {dtype_name}; {args.batches} timed batches per row after one warm-up\n")
        print(f"{'kind':<11}{'batch':>6}{'ours/s':>10}{'bare/s':>10}{'ours/bare':>10}{'TFLOP/s':>9}"
              f"{'of peak':>9}{'peak GB':>9}")
        best = {}
        for kind in ("understand", "generate"):
            if kind == "generate" and args.skip_generation:
                continue
            for b in sizes:
                reqs = requests(kind, b * (args.batches + 1), size)
                batches = [reqs[i:i + b] for i in range(0, len(reqs), b)]
                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                ours = timed(getattr(adapter, kind), batches, device)
                bare_fn = bare_understand if kind == "understand" else bare_generate
                bare = timed(lambda batch: bare_fn(model, processor, batch, device), batches, device)
                n = b * (len(batches) - 1)
                rate_ours, rate_bare = (n + b) / ours, (n + b) / bare
                flops = ""
                if kind == "understand":
                    prompt = len(processor.tokenizer(processor.apply_chat_template(
                        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": reqs[0].text}]}],
                        add_generation_prompt=True))["input_ids"]) + model.config.vision_config.num_image_tokens
                    tflops = 2 * (lm * (prompt + ANSWER_TOKENS) + vision * model.config.vision_config.num_image_tokens) \
                        * rate_ours / 1e12
                    flops = f"{tflops:>9.1f}" + (f"{100 * tflops / peak:>8.1f}%" if peak else f"{'-':>9}")
                else:
                    flops = f"{'-':>9}{'-':>9}"
                mem = (f"{torch.cuda.max_memory_allocated() / 2 ** 30:>9.1f}" if device.startswith("cuda")
                       else f"{'-':>9}")       # peak memory is measured on accelerators only
                print(f"{kind:<11}{b:>6}{rate_ours:>10.2f}{rate_bare:>10.2f}{rate_ours / rate_bare:>10.3f}{flops}{mem}")
                if rate_ours > best.get(kind, (0,))[0]:
                    best[kind] = (rate_ours, b, rate_ours / rate_bare)
        print()
        if "understand" in best:
            rate, b, rel = best["understand"]
            print(f"VQAv2 val ({VQAV2_QUESTIONS:,} questions) at batch {b}: {VQAV2_QUESTIONS / rate / 60:.1f} min "
                  f"(target for the 7B shape on one H100: <= 60); adapter at {rel:.3f} of the bare loop")
        if "generate" in best:
            rate, b, rel = best["generate"]
            print(f"GenEval ({GENEVAL_IMAGES:,} images) at batch {b}: {GENEVAL_IMAGES / rate / 60:.1f} min "
                  f"(target for the 7B shape on one H100: <= 5); adapter at {rel:.3f} of the bare loop")


if __name__ == "__main__":
    main()
