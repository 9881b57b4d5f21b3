"""Name and label syntax shared by every kind (Kubernetes' rules).

Called by the model validators in `shoal.api.meta` and `shoal.api.selectors`.
"""

from __future__ import annotations

import re

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_object_name(name: str) -> str:
    """A resource name: DNS-1123 subdomain, at most 253 characters."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ValueError(
            "must be lowercase letters, digits, '-' or '.', start and end with a letter or "
            "digit, at most 253 characters"
        )
    return name


def check_dns_label(name: str) -> str:
    """A DNS-1123 label (namespaces, port names): at most 63 characters."""
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(
            "must be lowercase letters, digits or '-', start and end with a letter or digit, "
            "at most 63 characters"
        )
    return name


def check_label_key(key: str) -> str:
    """A label or annotation key: optional DNS prefix and '/', then a name of <= 63 chars."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"label key {key!r}: prefix must be a DNS subdomain")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(
            f"label key {key!r}: name must be at most 63 characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return key


def check_label_value(key: str, value: str) -> str:
    """A label value: empty, or at most 63 characters like a label name."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(
            f"label {key!r}: value {value!r} must be at most 63 characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return value


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Validate every key and value of a label map."""
    for key, value in labels.items():
        check_label_key(key)
        check_label_value(key, value)
    return labels


def check_env_name(name: str) -> str:
    """An environment variable name: C identifier."""
    if not _ENV_NAME.match(name):
        raise ValueError("must be letters, digits and '_', not starting with a digit")
    return name
