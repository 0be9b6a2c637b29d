"""Daily passes from the final pass's basis, against the Orb sandbox (real HTTP on loopback) and
moto's S3 and DynamoDB: a daily pass reads one basis object and no archive object; it reports a
sampled key deprecated since the final pass, a key repaired since as present, and a deprecation
outside its sample as a volume shortfall; a run killed around the basis and the report resumes with
exactly one of each; an hour without a usable basis is re-checked from its archive, and says so."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from orb_bridge.reconcile.basis import basis_key
from orb_bridge.reconcile.service import RunSummary
from orb_bridge_dev.orb_sandbox import OrbSandbox
from tests.integration import test_orb_reconcile as reconcile_tests
from tests.integration.test_orb_reconcile import API_KEY, BUCKET, LATER, TABLE, Run, event, ingest_and_archive

# The same moto AWS and Orb sandbox as the reconciler's other tests.
aws = reconcile_tests.aws
sandbox = reconcile_tests.sandbox

HOUR = "2026-03-02T10"
DAY = LATER + timedelta(days=1)  # the hour's first daily pass is due
BASIS = basis_key(HOUR)


class KilledError(Exception):
    """A deterministic kill point: raised from inside an AWS call the run makes."""


def run_at(sandbox: OrbSandbox, aws: tuple[Any, Any], when: Any, **overrides: Any) -> tuple[Run, RunSummary]:
    run = Run(sandbox, aws, **overrides)
    run.reconciler.now = when
    return run, run()


@pytest.fixture
def gets(aws: tuple[Any, Any]) -> Iterator[list[str]]:
    """The keys of every S3 GetObject made from now on."""
    s3, _ = aws
    seen: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(str(params["Key"]))

    s3.meta.events.register("before-parameter-build.s3.GetObject", record)
    yield seen
    s3.meta.events.unregister("before-parameter-build.s3.GetObject", record)


@pytest.fixture
def finalised(sandbox: OrbSandbox, aws: tuple[Any, Any]) -> set[str]:
    """2,000 events archived in send-hour 10, 1% silently lost; first and final passes done. The
    lost keys."""
    s3, _ = aws
    sandbox.faults.lose_rate = 0.01
    ingest_and_archive(sandbox, s3, [event(n) for n in range(2000)])
    sandbox.faults.lose_rate = 0.0
    _, summary = run_at(sandbox, aws, LATER)
    assert summary.done == [f"{HOUR}#first", f"{HOUR}#final"]
    return set(sandbox.lost_keys())


def read_basis_document(s3: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(gzip.decompress(s3.get_object(Bucket=BUCKET, Key=BASIS)["Body"].read()))
    return document


def test_the_final_pass_writes_a_basis_and_a_daily_pass_reads_it_and_no_archive_object(
    sandbox: OrbSandbox, aws: tuple[Any, Any], finalised: set[str], gets: list[str]
) -> None:
    s3, _ = aws
    document = read_basis_document(s3)
    assert len(document["sample"]) == 1000 and document["present_keys"] == 2000 - len(finalised)
    assert {item["idempotency_key"] for item in document["not_present"]} == finalised
    assert not {item["idempotency_key"] for item in document["sample"]} & finalised  # a sample of present ones
    gets.clear()
    run, summary = run_at(sandbox, aws, DAY)
    assert summary.done == [f"{HOUR}#daily-2026-03-04"]
    assert gets == [BASIS]  # one GET: the basis; no archive object
    assert run.orb.calls["search"] == 3  # 1,000 sampled + the lost ones: ceil(n / 500)
    report = summary.reports[0]
    assert report["basis"]["used"] is True and report["basis"]["sample"] == 1000
    assert report["basis"]["present_at_final"] == 2000 - len(finalised)
    assert report["sampled"] is True and report["checked_keys"] == 1000 + len(finalised)
    assert set(report["not_present"]["not_found"]) == finalised  # still lost: reported again
    assert report["volume"]["shortfall"] == 0


def test_a_sampled_key_deprecated_after_the_final_pass_is_reported_deprecated(
    sandbox: OrbSandbox, aws: tuple[Any, Any], finalised: set[str]
) -> None:
    s3, _ = aws
    sampled = read_basis_document(s3)["sample"][5]["idempotency_key"]
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        assert http.put(f"/events/{sampled}/deprecate").status_code == 200
    run, summary = run_at(sandbox, aws, DAY)
    report = summary.reports[0]
    assert report["not_present"]["deprecated"] == [sampled]
    assert report["volume"]["shortfall"] == 0  # reported once, as deprecated, not again as a shortfall
    assert run.metrics["EventsDeprecatedInOrb"] == 1


def test_a_key_not_present_at_the_final_pass_and_repaired_since_is_reported_present(
    sandbox: OrbSandbox, aws: tuple[Any, Any], finalised: set[str]
) -> None:
    repaired = sorted(finalised)[0]
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        number = int(repaired.removeprefix("evt-"))
        assert http.post("/ingest", json={"events": [event(number)]}).status_code == 200
    _, summary = run_at(sandbox, aws, DAY)
    report = summary.reports[0]
    assert set(report["not_present"]["not_found"]) == finalised - {repaired}
    assert report["counts"]["present"] == 1001  # the sample and the repaired key
    assert report["volume"]["shortfall"] == 0


def test_a_deprecation_outside_the_sample_shows_as_a_volume_shortfall(
    sandbox: OrbSandbox, aws: tuple[Any, Any], finalised: set[str]
) -> None:
    s3, _ = aws
    document = read_basis_document(s3)
    known = {item["idempotency_key"] for item in document["sample"]} | finalised
    outside = next(f"evt-{n:05d}" for n in range(2000) if f"evt-{n:05d}" not in known)
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        assert http.put(f"/events/{outside}/deprecate").status_code == 200
    run, summary = run_at(sandbox, aws, DAY)
    report = summary.reports[0]
    assert "deprecated" not in report["not_present"]  # not looked up: outside the sample
    assert report["volume"]["shortfall"] == 1 and run.metrics["VolumeShortfall"] == 1


@pytest.mark.parametrize("kill_point", ["after the basis", "after the report"])
def test_a_final_pass_killed_around_its_basis_and_report_resumes_with_one_of_each(
    sandbox: OrbSandbox, aws: tuple[Any, Any], kill_point: str
) -> None:
    s3, dynamodb = aws
    ingest_and_archive(sandbox, s3, [event(n) for n in range(1200)])
    _, summary = run_at(sandbox, aws, LATER - timedelta(hours=10))  # the first pass only
    assert summary.done == [f"{HOUR}#first"]

    def kill_before_report(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == f"reports/sent_hour={HOUR}/final.json":
            raise KilledError

    def kill_before_done(params: dict[str, Any], **_: Any) -> None:
        item = params["Item"]
        if item["pk"] == {"S": f"{HOUR}#final"} and item["status"] == {"S": "done"}:
            raise KilledError

    if kill_point == "after the basis":
        s3.meta.events.register("before-parameter-build.s3.PutObject", kill_before_report)
    else:
        dynamodb.meta.events.register("before-parameter-build.dynamodb.PutItem", kill_before_done)
    with pytest.raises(KilledError):
        run_at(sandbox, aws, LATER)
    s3.meta.events.unregister("before-parameter-build.s3.PutObject", kill_before_report)
    dynamodb.meta.events.unregister("before-parameter-build.dynamodb.PutItem", kill_before_done)
    written = read_basis_document(s3)

    resumed, summary = run_at(sandbox, aws, LATER)
    assert summary.done == [f"{HOUR}#final"] and resumed.orb.calls["search"] == 0  # every batch was done
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="reports/")["Contents"])
    assert keys == [BASIS, f"reports/sent_hour={HOUR}/final.json", f"reports/sent_hour={HOUR}/first.json"]
    assert read_basis_document(s3) == written
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"{HOUR}#final"}})["Item"]
    assert item["status"] == {"S": "done"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (None, "no basis"),
        (b"not gzip", "basis refused: not gzip JSON"),
        (
            gzip.compress(b'{"format": 1, "hour": "2026-03-02T10", "sample": "x"}', mtime=0),
            "basis refused: archived_keys",
        ),
        (gzip.compress(b"\0" * (40 * 1024 * 1024), mtime=0), "basis refused: inflates to more than"),
    ],
    # Named ids: pytest-xdist requires every worker to collect the same ids, and a gzip body's bytes
    # (its mtime) would make the id depend on the second each worker collected it in.
    ids=["no basis", "not gzip", "wrong shape", "bomb"],
)
def test_an_hour_without_a_usable_basis_is_re_checked_from_its_archive_and_the_report_says_why(
    sandbox: OrbSandbox, aws: tuple[Any, Any], finalised: set[str], gets: list[str], body: bytes | None, reason: str
) -> None:
    s3, _ = aws
    s3.delete_object(Bucket=BUCKET, Key=BASIS)
    if body is not None:
        s3.put_object(Bucket=BUCKET, Key=BASIS, Body=body)
    gets.clear()
    run, summary = run_at(sandbox, aws, DAY)
    report = summary.reports[0]
    assert report["basis"]["used"] is False and report["basis"]["reason"].startswith(reason)
    assert gets[0] == BASIS and len(gets) == 1 + 4  # then the hour's 4 archive objects, as before
    assert report["checked_keys"] == 2000 and run.orb.calls["search"] == 4
    assert set(report["not_present"]["not_found"]) == finalised
