"""Does a checkpoint fit a preemption notice? The bytes each host writes and how long that takes.

A spot or preemptible TPU VM gets about NOTICE_S seconds between SIGTERM and shutdown; the trainer
saves at the next step boundary (`train.interrupts`), so that save must finish inside the notice or
the run falls back to its last periodic checkpoint (`checkpoint_every` steps back at most).

What is saved: the parameters and the optimizer state (gradients are not). Orbax writes each shard of
an array once, from one replica, so a sharded state spreads over the hosts; the estimate assumes it
spreads evenly (FSDP does that; a replicated tensor is written by one host, which is then slower).
The bandwidths are per host and stated, not measured: pass what your disk and bucket sustain.
"""

from __future__ import annotations

import dataclasses

NOTICE_S = 30.0  # cloud.google.com/compute/docs/instances/spot: "Compute Engine gives 30 seconds" before stopping
# Sustained write bandwidth per host, bytes/s. Local: a TPU VM's pd-balanced boot disk (~240 MB/s, Compute
# Engine's per-VM limit at small sizes); GCS: what Orbax/TensorStore reaches from one host in practice.
BANDWIDTH = {"local disk": 200e6, "gcs": 500e6}


@dataclasses.dataclass(frozen=True)
class SaveTime:
  checkpoint_bytes: int  # the whole state, all hosts together
  hosts: int
  notice_s: float
  seconds: dict[str, float]  # store -> seconds for one host's share at BANDWIDTH[store]
  bandwidth: dict[str, float]

  @property
  def bytes_per_host(self) -> float:
    return self.checkpoint_bytes / self.hosts

  @property
  def fits_notice(self) -> dict[str, bool]:
    return {store: s <= self.notice_s for store, s in self.seconds.items()}

  def lines(self) -> list[str]:
    gib = 1024 ** 3
    out = [f"checkpoint (parameters + optimizer state): {self.checkpoint_bytes / gib:.2f} GiB, "
           f"{self.bytes_per_host / gib:.2f} GiB per host over {self.hosts} host(s)"]
    for store, s in self.seconds.items():
      verdict = "fits" if s <= self.notice_s else "does NOT fit"
      out.append(f"  write to {store} at {self.bandwidth[store] / 1e6:.0f} MB/s per host: {s:.1f} s -> "
                 f"{verdict} a {self.notice_s:.0f} s preemption notice")
    if not all(self.fits_notice.values()):
      out.append("  warning: a preemption save may not finish in the notice; a preempted run then resumes from "
                 "its last periodic checkpoint (checkpoint_every steps back at most; see tpu/README.md)")
    return out


def estimate(checkpoint_bytes: int, hosts: int, notice_s: float = NOTICE_S,
             bandwidth: dict[str, float] | None = None) -> SaveTime:
  bandwidth = dict(BANDWIDTH if bandwidth is None else bandwidth)
  per_host = checkpoint_bytes / max(1, hosts)
  return SaveTime(int(checkpoint_bytes), max(1, hosts), float(notice_s),
                  {store: per_host / bw for store, bw in bandwidth.items()}, bandwidth)
