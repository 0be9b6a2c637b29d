"""Some sections of ``make bench`` on their own, printed, BENCHMARKS.md left alone (the machine is
shared: the whole run takes minutes of both cores).

python -m bench.sections [--ingest-rounds N]   # 2. ingest throughput and 6. cost (with their inputs)
"""

from __future__ import annotations

import argparse
import sys

from bench import ingest, intake_bench, webhook_verify
from bench.common import isolate_aws_environment
from bench.cost_section import cost_section, ingest_batches
from bench.ingest_section import ingest_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sections")
    parser.add_argument("--ingest-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    isolate_aws_environment()
    missed: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)

    print("ingest throughput ...", file=sys.stderr, flush=True)
    throughput = ingest.run(rounds=args.ingest_rounds, archive_batches=ingest_batches())
    print("intake, webhook verification (cost inputs) ...", file=sys.stderr, flush=True)
    intake = intake_bench.run()
    verify = webhook_verify.run()
    ingest_section(say, missed, throughput)
    cost_section(say, missed, intake, throughput, verify)
    say(f"**Targets missed: {', '.join(missed)}.**" if missed else "Targets of these sections met.")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
