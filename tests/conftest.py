"""Shared test fixtures and isolated AWS credentials (helpers live in ``tests/support``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.lambdas import ROOT, FakeLambdaContext
from tests.support.process_caches import share_one_botocore_loader, share_one_default_ssl_context

# Never reach a real AWS account from tests, whatever the developer's shell has.
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SegmentOrbBridge")
os.environ.setdefault("POWERTOOLS_DEV", "false")
# Every Orb sandbox answer in every test (subprocess sandboxes too) is checked against Orb's spec.
CONTRACT_SPEC = ROOT / "tests" / "contract" / "orb-openapi-subset.json"
os.environ["ORB_SANDBOX_CONTRACT_SPEC"] = str(CONTRACT_SPEC)
# Each command's new boto3 session and httpx client would parse botocore's service models and
# load the CA bundle again (see the module).
share_one_botocore_loader()
share_one_default_ssl_context()


@pytest.fixture(autouse=True)
def orb_contract_checked() -> Iterator[None]:
    """Fail the test if the Orb sandbox answered (or the bridge asked) outside Orb's spec."""
    from orb_bridge_dev.orb_sandbox import contract

    if contract.active_spec() != str(CONTRACT_SPEC):
        contract.enable(str(CONTRACT_SPEC))
    contract.take_violations()
    yield
    violations = contract.take_violations()
    if violations:
        pytest.fail("Orb contract violations:\n" + "\n".join(violations), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _own_dev_stacks_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`--dev` finds running dev stacks through files at the repository's root: in tests, a
    directory of this process's own (one per xdist worker), never a developer's `make dev`."""
    from orb_bridge_dev.deployment import dev_stacks

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dev_stacks, "DEV_STACKS_DIR", tmp_path_factory.mktemp("dev-stacks"))
        yield


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def _fresh_secret_cache():
    """Secrets read from (moto's) Secrets Manager are cached per ARN for 300 s: not across tests."""
    from orb_bridge.aws.secrets import secret_cache

    secret_cache.clear()
    yield
    secret_cache.clear()


@pytest.fixture(autouse=True)
def _no_metrics_left_by_an_earlier_test() -> None:
    """Powertools' Metrics is process-wide: metrics a test added and never flushed would be flushed
    (and counted) by the next handler call, in whichever test runs next."""
    from orb_bridge.core.observability import metrics

    metrics.clear_metrics()
