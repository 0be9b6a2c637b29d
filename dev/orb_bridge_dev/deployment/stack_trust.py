"""What a stack says is input: the Orb URL it names and the secret it points at are checked before
an operator's key goes anywhere (the URL rule and Orb's host, a secret of the stack's own account and region)."""

from __future__ import annotations

from orb_bridge.orb.base_url import LOOPBACK_HOSTS, ORB_API_HOST, OrbUrlError, base_url_host, checked_base_url
from orb_bridge_dev.deployment.rejected_records import TargetError
from orb_bridge_dev.terminal import printable


def checked_url(url: str, what: str, allowed_hosts: set[str] | frozenset[str] | None) -> str:
    """``url`` if it passes the functions' rule and (unless None) names one of ``allowed_hosts``."""
    try:
        checked = checked_base_url(url)
        host = base_url_host(checked)
    except OrbUrlError as exc:
        raise TargetError(f"{what} ('{printable(url)}') {exc}: refusing to send it an Orb API key") from None
    if allowed_hosts is None or host in allowed_hosts:
        return checked
    if allowed_hosts <= LOOPBACK_HOSTS:
        raise TargetError(f"{what} ({checked}) is not on this machine: refusing to send it an Orb API key")
    raise TargetError(
        f"{what} ({checked}) is not Orb's API host ({ORB_API_HOST}): refusing to send it an Orb API key. "
        f"If {host} is your Orb endpoint, pass --allow-orb-host {host}"
    )


def arn_fields(arn: str) -> tuple[str, str, str, str, str] | None:
    """(partition, service, region, account, resource) of an ARN, or None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not all(parts[1:3]) or not parts[5]:
        return None
    return parts[1], parts[2], parts[3], parts[4], parts[5]


def check_secret_arn(arn: str, stack_id: str, stack_name: str) -> None:
    """The stack's key secret must be a Secrets Manager secret in the stack's own account and
    region: otherwise the stack could name any secret the operator can read."""
    secret, stack = arn_fields(arn), arn_fields(stack_id)
    if secret is None or secret[1] != "secretsmanager" or not secret[4].startswith("secret:"):
        raise TargetError(
            f"the OrbApiKeySecretArn of stack {stack_name!r} ('{printable(arn)}') is not a Secrets Manager secret ARN; "
            "set ORB_API_KEY instead"
        )
    if stack is None:
        raise TargetError(f"cannot read stack {stack_name!r}'s account and region from its StackId")
    if (secret[0], secret[2], secret[3]) != (stack[0], stack[2], stack[3]):
        raise TargetError(
            f"the OrbApiKeySecretArn of stack {stack_name!r} is in account {printable(secret[3])} region "
            f"{printable(secret[2])}, not the stack's ({stack[3]} {stack[2]}): refusing to read it; "
            "set ORB_API_KEY instead"
        )
