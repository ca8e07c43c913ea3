"""The benchmark's results as tables."""
from __future__ import annotations

from typing import Any


from trainer.benchkit import table


def print_report(out: dict[str, Any]) -> None:
    meta = out["meta"]
    print(f"nstcam.measure.bench  torch {meta['torch']}  threads {meta['torch_threads']}  cpu {meta['cpu']}  "
          f"load {meta['loadavg_start']} -> {meta['loadavg_end']}{'  mallopt' if meta['malloc_tuned'] else ''}")
    for dev, m in out["models"].items():
        print(f"model on {dev}: {m['style']} ({m['arch']}; {m['source']})")
    if out["engine"]:
        print("\nEngine (BGR host -> RGB host, full frame size) vs naive example loop")
        print(table(out["engine"], [
            ("device", "device", ""), ("backend", "backend", ""), ("prec", "precision", ""), ("size", "size", ""),
            ("ch_last", "channels_last", ""),
            ("fps", "engine_fps", ".1f"), ("p50 ms", "engine_p50_ms", ".1f"), ("p95 ms", "engine_p95_ms", ".1f"),
            ("naive fps", "naive_fps", ".1f"), ("naive p50", "naive_p50_ms", ".1f"), ("naive p95", "naive_p95_ms", ".1f"),
            ("x naive", "speedup_vs_naive", ".2f"), ("vs 1st prec", "vs_first_precision", ".2f"),
            ("target", "cpu_target_fps", ".0f"), ("meets", "meets_cpu_target", ""),
        ]))
    if out["pipeline"]:
        print("\nPipeline (the live session: capture -> stylize thread -> sink), frames arriving faster than stylized")
        print(table(out["pipeline"], [
            ("device", "device", ""), ("prec", "precision", ""), ("size", "size", ""),
            ("capture fps", "capture_fps", ".1f"), ("pipe fps", "pipeline_fps", ".1f"), ("engine fps", "engine_fps", ".1f"),
            ("pipe/eng", "pipeline_vs_engine", ".2f"), ("eng fps thread", "engine_thread_fps", ".1f"),
            ("pipe/eng thread", "pipeline_vs_engine_thread", ".2f"), ("lat p50", "latency_p50_ms", ".1f"),
            ("lat p95", "latency_p95_ms", ".1f"), ("p95 1st half", "first_half_p95_ms", ".1f"),
            ("p95 2nd half", "second_half_p95_ms", ".1f"), ("captured", "captured", ""), ("dropped", "dropped", ""),
            ("bounded", "latency_bounded", ""),
        ]))
    if out["parity"]:
        print("\nParity vs strict fp32 eager (PSNR over the same frames)")
        print(table(out["parity"], [
            ("device", "device", ""), ("size", "size", ""), ("variant", "variant", ""),
            ("PSNR min dB", "psnr_db", ".1f"), ("PSNR mean dB", "psnr_mean_db", ".1f"),
            ("max |diff|", "max_abs_diff", ""), (">= 40 dB", "meets_40db", ""),
        ]))
    if out["compare_archs"]:
        print("\nCPU architecture comparison (engine, full frame size)")
        print(table(out["compare_archs"], [
            ("arch", "arch", ""), ("prec", "precision", ""), ("size", "size", ""), ("GMAC", "gmacs", ".2f"),
            ("params", "params", ""), ("ms/frame", "ms_per_frame", ".1f"), ("fps", "fps", ".1f"),
            ("cost vs 1st", "cost_vs_reference", ".3f"), ("min", "cost_vs_reference_min", ".3f"),
            ("max", "cost_vs_reference_max", ".3f"), ("CPU ms", "cpu_ms_per_frame", ".1f"),
            ("CPU cost", "cpu_cost_vs_reference", ".3f"), ("min", "cpu_cost_vs_reference_min", ".3f"),
            ("max", "cpu_cost_vs_reference_max", ".3f"),
            ("p95 ms", "p95_ms", ".1f"), ("target", "target_fps", ".0f"), ("meets", "meets_target", ""),
        ]))
    for err in out["errors"]:
        print(f"error: {err}")


