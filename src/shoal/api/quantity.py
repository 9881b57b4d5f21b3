"""Kubernetes resource quantities: CPU (`500m`, `2`, `0.5`) and bytes (`128Mi`, `1G`, `512`).

Parsed at validation time so that `resources.requests.cpu: lots` is a field-path error, and
used by the scheduler (fit) and the sandbox driver (cgroup limits).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _parse(text: str) -> tuple[Decimal, str]:
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity (examples: 500m, 2, 128Mi, 1Gi)")
    try:
        return Decimal(match.group(1)), match.group(2) or ""
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{text!r} is not a quantity") from error


def parse_cpu_millis(text: str | int | float) -> int:
    """CPU in millicores: `500m` → 500, `2` → 2000, `0.25` → 250."""
    number, suffix = _parse(str(text))
    if suffix == "m":
        return int(number)
    return int(number * 1000 * _SUFFIXES[suffix])


def parse_bytes(text: str | int | float) -> int:
    """Memory in bytes: `128Mi` → 134217728, `1G` → 10**9, `100m` (milli-bytes) → 0."""
    number, suffix = _parse(str(text))
    if suffix == "m":
        return int(number / 1000)
    return int(number * _SUFFIXES[suffix])


def check_quantity(text: str | int | float) -> str:
    """Validator: keep the user's spelling, reject what does not parse."""
    _parse(str(text))
    return str(text)
