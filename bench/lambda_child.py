"""One fresh Lambda-like process: python3.13, only the runtime's boto3, the built artifact on the path.

    python3.13 -P -s bench/lambda_child.py CASE SPEC.json

Run by ``bench.lambda_like`` through ``bench.lambda_runner`` (never imported by them): standard
library and boto3 only. sys.path is arranged as the python3.13 runtime arranges it (``/var/task`` =
the built function directory, then the layer's ``python/lib/python3.13/site-packages`` and
``python/``, then the runtime's site-packages holding boto3, then the standard library).
PYTHONDONTWRITEBYTECODE is set by the parent: /var/task and /opt are read-only in Lambda, so nothing
compiled here may be reused.

Cases: ``floor`` (import boto3 + one SQS client + one SendMessageBatch), ``cold:<function>``
(import app, settings with secret reads, clients, first request: each step timed) and
``intake-batch`` (the per-event figures: handler vs floor on one 1,000-event body, SQS stubbed).
Writes one JSON object to SPEC["result_path"].
"""

import json
import sys
import time

START = time.perf_counter()


def arrange_path(spec):
    stdlib = [p for p in sys.path if "site-packages" not in p and p]
    layer = spec["layer_dir"]
    sys.path[:] = [spec["task_dir"], f"{layer}/lib/python3.13/site-packages", layer, spec["runtime_site"], *stdlib]


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self, timeout_seconds=60.0):
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self):
        return int(max(0.0, self._deadline - time.monotonic()) * 1000)


def floor(spec):
    steps = {}
    mark = time.perf_counter()
    import boto3

    steps["import"] = time.perf_counter() - mark
    mark = time.perf_counter()
    sqs = boto3.session.Session().client("sqs")
    steps["clients"] = time.perf_counter() - mark
    mark = time.perf_counter()
    sqs.send_message_batch(QueueUrl=spec["queue_url"], Entries=[{"Id": "0", "MessageBody": spec["floor_message"]}])
    steps["first request"] = time.perf_counter() - mark
    return steps


def cold(spec, function):
    """Each step the first request would take, in its order; their sum is the full cold start."""
    steps = {}
    mark = time.perf_counter()
    import app  # Lambda's INIT: /var/task/app.py

    steps["import"] = time.perf_counter() - mark
    from orb_bridge.aws import clients as aws
    from orb_bridge.ingest.settings import IngestSettings
    from orb_bridge.intake.settings import IntakeSettings
    from orb_bridge.webhooks.settings import WebhookSettings

    mark = time.perf_counter()
    read_settings = {
        "track_intake": IntakeSettings.from_env,
        "orb_ingest": IngestSettings.from_env,
        "orb_webhook": WebhookSettings.from_env,
    }[function]
    read_settings()  # reads the secret(s): Powertools Parameters caches them
    steps["settings"] = time.perf_counter() - mark
    mark = time.perf_counter()
    for service in spec["clients"][function]:
        aws.client(service)  # the cached clients the handler then uses
    steps["clients"] = time.perf_counter() - mark
    with open(spec["events"][function]) as source:
        event = json.load(source)
    mark = time.perf_counter()
    response = app.lambda_handler(event, Context())
    steps["first request"] = time.perf_counter() - mark
    check_response(function, response)
    return steps


def check_response(function, response):
    ok = response.get("batchItemFailures") == [] if function == "orb_ingest" else response.get("statusCode") == 200
    if not ok:
        raise SystemExit(f"{function}: unexpected first response {response!r}")


def intake_batch(spec):
    """Handler vs floor on the same body, interleaved rounds, minimum of each (CPU-bound, noisy host)."""
    import importlib.util

    import boto3

    stub_spec = importlib.util.spec_from_file_location("sqs_stub", spec["stub_path"])
    assert stub_spec is not None and stub_spec.loader is not None
    stub = importlib.util.module_from_spec(stub_spec)
    stub_spec.loader.exec_module(stub)

    import app

    from orb_bridge.aws import clients as aws

    stub.InProcessSqs(aws.client("sqs"))
    floor_client = boto3.session.Session().client("sqs")
    floor_stub = stub.InProcessSqs(floor_client)
    with open(spec["events"]["intake_batch"]) as source:
        batch_event = json.load(source)
    with open(spec["events"]["track_intake"]) as source:
        single_event = json.load(source)
    body = batch_event["body"]
    queue_url = spec["queue_url"]
    context = Context()

    def handler_batch():
        response = app.lambda_handler(batch_event, context)
        if response["statusCode"] != 200:
            raise SystemExit(f"intake refused the batch: {response['body'][:300]}")

    def handler_single():
        app.lambda_handler(single_event, context)

    def floor_batch():
        elements = json.loads(body)
        for start in range(0, len(elements), 10):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps(element)}
                for n, element in enumerate(elements[start : start + 10])
            ]
            floor_client.send_message_batch(QueueUrl=queue_url, Entries=entries)

    def json_floor():
        json.dumps(json.loads(body))

    cases = {"handler": handler_batch, "floor": floor_batch, "json": json_floor, "single": handler_single}
    for function in cases.values():  # warm: clients, caches, the secret
        function()
    calls_before = floor_stub.calls
    floor_batch()
    floor_calls = floor_stub.calls - calls_before
    # CPU time of the process (all threads) is the work done, what Lambda's CPU share pays for; on
    # this shared machine it is also far steadier than wall time. Both are kept.
    best = {name: float("inf") for name in cases}
    best_wall = dict(best)
    for _ in range(spec["repeats"]):
        for name, function in cases.items():
            loops = 20 if name in ("single", "json") else 1
            mark, cpu_mark = time.perf_counter(), time.process_time()
            for _ in range(loops):
                function()
            best[name] = min(best[name], (time.process_time() - cpu_mark) / loops)
            best_wall[name] = min(best_wall[name], (time.perf_counter() - mark) / loops)
    events = len(json.loads(body))
    if spec.get("profile_path"):
        import cProfile

        cProfile.runctx(
            "for _ in range(5): handler_batch()", globals(), {"handler_batch": handler_batch}, spec["profile_path"]
        )
    return {"events": events, "floor_calls": floor_calls, "seconds": best, "wall_seconds": best_wall}


def main():
    case, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as source:
        spec = json.load(source)
    arrange_path(spec)
    if case == "floor":
        result = {"steps": floor(spec)}
    elif case.startswith("cold:"):
        result = {"steps": cold(spec, case.split(":", 1)[1])}
    elif case == "intake-batch":
        result = intake_batch(spec)
    else:
        raise SystemExit(f"unknown case {case!r}")
    result["total"] = time.perf_counter() - START
    result["modules"] = len(sys.modules)
    result["python"] = sys.version.split()[0]
    with open(spec["result_path"], "w") as sink:
        json.dump(result, sink)


if __name__ == "__main__":
    main()
