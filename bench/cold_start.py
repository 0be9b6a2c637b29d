"""Cold start: time to import each handler in a fresh interpreter, beside its peers.

Peers: the floor any function talking to AWS pays (``import boto3`` plus creating one client)
and the official Orb SDK (``import orb`` plus creating its client). Each case runs in a new
process; rounds are interleaved so that drift on the machine touches every case alike.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from bench.common import FUNCTIONS, median, run_json_subprocess

# Settings the handlers would find in Lambda; none must be read at import, but a handler that
# did should not fail here for want of them.
HANDLER_ENV = {
    "INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
    "REJECTED_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/rejected",
    "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
    "SEGMENT_AUTH_TOKEN": "bench-token",
    "ORB_API_KEY": "bench-key",
    "ORB_WEBHOOK_SECRET": "bench-secret",
    "WEBHOOK_EVENT_BUS_NAME": "bench-bus",
    "IDEMPOTENCY_TABLE_NAME": "bench-table",
    # As template.yaml's Globals set it for every function.
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}

# What each function creates on its first request, so "import + clients" compares like for like
# with the floor (which creates one boto3 client). The handlers now build these during INIT, so
# "import app" already holds them.
FIRST_REQUEST_CLIENTS = {
    "track_intake": ("sqs",),
    "orb_ingest": ("sqs",),
    "orb_webhook": ("dynamodb", "events"),
}

TARGETS = {"track_intake": 1.5, "orb_webhook": 1.5, "orb_ingest": 1.8}


def _timed(body: str) -> str:
    return textwrap.dedent(
        """
        import json, time, importlib.util, sys
        start = time.perf_counter()
        {body}
        elapsed = time.perf_counter() - start
        print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules)}}))
        """
    ).format(body=body)


def _handler_import(function_name: str, services: tuple[str, ...] = ()) -> str:
    path = FUNCTIONS / function_name / "app.py"
    lines = [
        f"spec = importlib.util.spec_from_file_location('{function_name}_app', {str(path)!r})",
        "module = importlib.util.module_from_spec(spec)",
        f"sys.modules['{function_name}_app'] = module",
        "spec.loader.exec_module(module)",
        "assert callable(module.lambda_handler)",
    ]
    if services:
        lines.append("from orb_bridge.aws import clients as aws")
        lines += [f"aws.client({service!r})" for service in services]
    return _timed("\n".join(lines))


@dataclass
class Case:
    name: str
    code: str
    function: str | None = None


def cases() -> list[Case]:
    result = [
        Case(
            "floor: import boto3 + boto3.client('sqs')", _timed("import boto3\nboto3.session.Session().client('sqs')")
        ),
        Case("peer: import orb + orb.Orb(api_key=...)", _timed("import orb\norb.Orb(api_key='bench-key')")),
    ]
    for function_name, services in FIRST_REQUEST_CLIENTS.items():
        result.append(Case(f"{function_name}: import app", _handler_import(function_name), function_name))
        result.append(
            Case(
                f"{function_name}: import app + {', '.join(services)} client(s)",
                _handler_import(function_name, services),
                function_name,
            )
        )
    return result


def run(rounds: int = 7) -> dict:
    all_cases = cases()
    samples: dict[str, list[float]] = {case.name: [] for case in all_cases}
    # One discarded round warms the page cache (and the .pyc files) for every case.
    for round_index in range(rounds + 1):
        for case in all_cases:
            seconds = run_json_subprocess(case.code, env=HANDLER_ENV)["seconds"]
            if round_index:
                samples[case.name].append(seconds)
    medians = {name: median(values) for name, values in samples.items()}
    floor = medians[all_cases[0].name]
    rows = []
    for case in all_cases:
        ms = medians[case.name] * 1000
        ratio = medians[case.name] / floor
        target = TARGETS.get(case.function or "")
        verdict = ""
        if target and case.name.endswith(": import app"):
            verdict = f"<= {target}x: {'met' if ratio <= target else 'MISSED'}"
        elif target:
            # The target is on the import; this row adds what the first request pays.
            verdict = f"(first request; {'within' if ratio <= target else 'over'} {target}x)"
        rows.append([case.name, f"{ms:.0f}", f"{ratio:.2f}x", verdict])
    return {"rounds": rounds, "medians_seconds": medians, "rows": rows}


if __name__ == "__main__":
    from bench.common import markdown_table

    result = run(rounds=3)
    print(markdown_table(["case", "median ms", "vs floor", "target"], result["rows"]))
