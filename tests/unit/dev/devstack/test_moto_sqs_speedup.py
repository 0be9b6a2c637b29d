"""The moto internals ``moto_sqs_speedup`` patches still exist with the shapes it expects.

A moto upgrade that renames or reshapes any of them must fail here, loudly, rather than leave
the dev stack silently slow (or wrong). This test only inspects moto; it patches nothing, since
the patch is process-wide and the other tests use moto unpatched.
"""

from __future__ import annotations

import importlib
import inspect

import boto3
import pytest
from moto import mock_aws

from orb_bridge_dev.devstack.moto_sqs_speedup import PATCHED


def _lookup(module_name: str, path: str) -> object:
    value: object = importlib.import_module(module_name)
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("module_name", "path"), PATCHED)
def test_every_patched_name_still_exists(module_name: str, path: str) -> None:
    assert _lookup(module_name, path) is not None, f"{module_name}.{path} is gone: revisit moto_sqs_speedup"


@pytest.mark.parametrize(
    ("path", "parameters"),
    [
        ("unix_time", ["dt"]),
        ("unix_time_millis", ["dt"]),
        ("SQSBackend.is_message_valid_based_on_retention_period", ["self", "queue_name", "message"]),
        ("SQSBackend.get_queue", ["self", "queue_name"]),
    ],
)
def test_patched_functions_keep_their_signatures(path: str, parameters: list[str]) -> None:
    function = _lookup("moto.sqs.models", path)
    assert list(inspect.signature(function).parameters) == parameters  # type: ignore[arg-type]


def test_clock_helpers_still_default_to_now() -> None:
    from moto.sqs import models

    for name in ("unix_time", "unix_time_millis"):
        assert inspect.signature(getattr(models, name)).parameters["dt"].default is None


def test_queue_attributes_is_a_property_built_from_the_attribute_lists() -> None:
    from moto.sqs.models import Queue

    assert isinstance(inspect.getattr_static(Queue, "attributes"), property)
    for names in (Queue.BASE_ATTRIBUTES, Queue.FIFO_ATTRIBUTES, Queue.KMS_ATTRIBUTES):
        assert all(isinstance(name, str) for name in names)


def test_queues_and_messages_carry_the_fields_the_patch_reads() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import sqs_backends

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="speedup-probe")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="probe")
        backend = sqs_backends["123456789012"]["us-east-1"]
        queue = backend.get_queue("speedup-probe")
        for field in ("fifo_queue", "kms_master_key_id", "policy", "redrive_policy", "message_retention_period"):
            assert hasattr(queue, field), f"moto's Queue lost {field}"
        # The lazy mapping reads each base attribute as the snake_case field of the queue.
        for name in queue.BASE_ATTRIBUTES:
            assert hasattr(queue, camelcase_to_underscores(name)), f"moto's Queue lost {name}"
        (message,) = queue._messages  # moto's private list, which the patch reads: this test watches it
        assert isinstance(message.sent_timestamp, int)
