"""Measuring speed: model FLOPs and peak FLOP/s, per-op profiles, timing helpers (infer and train benchmarks)."""
