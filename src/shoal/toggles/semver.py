"""Semantic Versioning 2.0.0 parsing and precedence, for the `semver_*` toggle operators.

Written by hand because the rules are short and exact (semver.org, section 11) and the project
has no semver dependency (`packaging` implements PEP 440, which orders pre-releases
differently). Called by `shoal.api.featuretoggle` (validation) and `shoal.toggles.engine`.
"""

from __future__ import annotations

import re

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$"
)

# A sort key: (major, minor, patch, release flag, pre-release identifiers). A release (flag 1)
# sorts after any pre-release (flag 0) of the same version; numeric identifiers sort before
# alphanumeric ones and compare as numbers. Build metadata is ignored, as the spec requires.
SemverKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


def parse_semver(text: str) -> SemverKey | None:
    """The precedence key of `text` (a leading `v` is tolerated), or None if not semver."""
    match = _SEMVER.match(text.strip())
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )
    return (int(major), int(minor), int(patch), 0, identifiers)
