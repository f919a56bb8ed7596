"""Measuring speed: model FLOPs and peak FLOP/s, per-op profiles, timing helpers (used by infer and train benchmarks)."""
