"""moto's server finds each request's service without listing its package directory: a patch of
moto's server process only, same answers.

moto (5.x) asks, for every request, whether the Host names one of its modules by listing moto's
package directory (``os.listdir`` and an ``isdir`` per entry, ~200 of them): about a third of the
server's CPU for a small S3 PUT or SQS send. The directory does not change while the server runs,
so the list is read once. ``PATCHED`` names the moto function replaced; a test checks it still
exists and still lists the same modules.
"""

from __future__ import annotations

import functools

PATCHED = (("moto.backends", "list_of_moto_modules"),)

_patched = False


def speed_up_moto_dispatch() -> None:
    """Read moto's module list once (idempotent)."""
    global _patched
    if _patched:
        return
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())

    @functools.wraps(backends.list_of_moto_modules)
    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    backends.list_of_moto_modules = list_of_moto_modules
    _patched = True
