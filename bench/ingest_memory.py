"""Ingest's memory: one 10,000-record invocation, in a fresh process each (so nothing else inflates
the figures): peak RSS, RSS after imports and a warm-up, and tracemalloc's peak."""

from __future__ import annotations

from typing import Any

from bench.sandbox_process import sandbox_process

MEMORY_CHILD = """
import json, os, sys, tracemalloc, uuid
from bench import ingest

def peak_rss_kb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the pre-exec (forked) parent.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")

handler = ingest.configure_ingest(sys.argv[1] if len(sys.argv) > 1 else os.environ["BENCH_ORB_URL"])
ingest.run_handler(handler, ingest.orb_events(10, "warm-" + uuid.uuid4().hex[:8]))
rss_before_kb = peak_rss_kb()
trace = os.environ.get("BENCH_TRACEMALLOC") == "1"
if trace:
    tracemalloc.start()
# The event is built inside the measurement: Lambda's runtime holds it in memory too.
events = ingest.orb_events(int(os.environ["BENCH_RECORDS"]), "m-" + uuid.uuid4().hex[:8])
ingest.run_handler(handler, events)
peak = tracemalloc.get_traced_memory()[1] if trace else None
print(json.dumps({"tracemalloc_peak": peak,
                  "rss_before_kb": rss_before_kb,
                  "max_rss_kb": peak_rss_kb()}))
"""


def memory(records: int = 10_000) -> dict[str, Any]:
    from bench.common import run_json_subprocess

    with sandbox_process(latency_seconds=0.0) as sandbox:
        env = {"BENCH_ORB_URL": sandbox.base_url, "BENCH_RECORDS": str(records)}
        rss = run_json_subprocess(MEMORY_CHILD, env={**env, "BENCH_TRACEMALLOC": "0"})
        traced = run_json_subprocess(MEMORY_CHILD, env={**env, "BENCH_TRACEMALLOC": "1"})
    return {
        "records": records,
        "tracemalloc_peak_mb": traced["tracemalloc_peak"] / 1024 / 1024,
        "rss_after_imports_mb": rss["rss_before_kb"] / 1024,
        "max_rss_mb": rss["max_rss_kb"] / 1024,
    }
