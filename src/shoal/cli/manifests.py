"""Loading manifests for `apply`, `diff` and `delete -f`: files, directories and stdin.

A manifest file holds one or more YAML (or JSON) documents separated by `---`; a directory
contributes its `.yaml`, `.yml` and `.json` files in sorted order (recursively with `-R`);
`-` reads stdin. A document of kind `List` contributes its `items`. Every document remembers
where it came from so that an error the API reports for `items[3].spec.replicas` can be
shown as `web.yaml (document 2, deployment/web): spec.replicas`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from shoal.api.registry import KINDS

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_ITEM_FIELD = re.compile(r"^items\[([0-9]+)\]\.?(.*)$")


class ManifestError(Exception):
    """A manifest cannot be read or parsed; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """One document and where it came from (`file`, 1-based `index` within the file)."""

    doc: dict[str, Any]
    file: str
    index: int

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "")

    @property
    def name(self) -> str:
        metadata = self.doc.get("metadata")
        return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""

    @property
    def namespace(self) -> str | None:
        metadata = self.doc.get("metadata")
        value = metadata.get("namespace") if isinstance(metadata, dict) else None
        return str(value) if value else None

    @property
    def ref(self) -> str:
        """`deployment/web`, as the CLI prints objects."""
        return f"{(self.kind or '<no kind>').lower()}/{self.name or '<no name>'}"

    @property
    def source(self) -> str:
        return f"{self.file} (document {self.index}, {self.ref})"


def manifest_files(path: Path, recursive: bool) -> list[Path]:
    """The manifest files of a directory, sorted; a file is returned as is."""
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    pattern = "**/*" if recursive else "*"
    return sorted(
        candidate
        for candidate in path.glob(pattern)
        if candidate.is_file() and candidate.suffix in MANIFEST_SUFFIXES
    )


def parse_documents(text: str, file: str) -> list[Manifest]:
    """Every non-empty document of a YAML stream; `List` documents are flattened."""
    try:
        raw_docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ManifestError(f"{file}: invalid YAML: {error}") from error
    manifests: list[Manifest] = []
    for index, raw in enumerate(raw_docs, start=1):
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise ManifestError(
                f"{file} (document {index}): expected a mapping with apiVersion, kind, "
                f"metadata, spec; got {type(raw).__name__}"
            )
        if raw.get("kind") == "List" and isinstance(raw.get("items"), list):
            for item in raw["items"]:
                if not isinstance(item, dict):
                    raise ManifestError(f"{file} (document {index}): List items must be mappings")
                manifests.append(Manifest(item, file, index))
        else:
            manifests.append(Manifest(raw, file, index))
    return manifests


def load_manifests(
    paths: Sequence[str], recursive: bool = False, stdin: TextIO | None = None
) -> list[Manifest]:
    """All documents of the given files, directories and `-` (stdin), in order."""
    manifests: list[Manifest] = []
    for given in paths:
        if given == "-":
            if stdin is None:
                raise ManifestError("-: stdin is not available")
            manifests.extend(parse_documents(stdin.read(), "<stdin>"))
            continue
        for file in manifest_files(Path(given), recursive):
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as error:
                raise ManifestError(f"{file}: {error.strerror or error}") from error
            manifests.extend(parse_documents(text, str(file)))
    if not manifests:
        raise ManifestError(f"no objects found in {', '.join(paths)}")
    return manifests


def with_namespace(
    manifests: Sequence[Manifest], namespace: str, explicit: bool
) -> list[dict[str, Any]]:
    """The documents to send, namespaced kinds placed in `namespace` unless they say otherwise.

    As kubectl does, a document naming another namespace than an explicit `-n` is an error:
    the user asked for one namespace and the file would write to another.
    """
    docs: list[dict[str, Any]] = []
    for manifest in manifests:
        doc = dict(manifest.doc)
        cls = KINDS.get(manifest.kind)
        if cls is not None and cls.NAMESPACED and isinstance(doc.get("metadata"), dict):
            own = manifest.namespace
            if own and explicit and own != namespace:
                raise ManifestError(
                    f"{manifest.source}: namespace {own!r} does not match --namespace "
                    f"{namespace!r} (pass --namespace {own} or remove it from the file)"
                )
            if not own:
                doc["metadata"] = {**doc["metadata"], "namespace": namespace}
        docs.append(doc)
    return docs


def locate_field(field: str, manifests: Sequence[Manifest]) -> str:
    """`items[1].spec.replicas` → `web.yaml (document 2, deployment/web): spec.replicas`."""
    match = _ITEM_FIELD.match(field)
    if not match or int(match.group(1)) >= len(manifests):
        return field
    manifest = manifests[int(match.group(1))]
    return f"{manifest.source}: {match.group(2) or '<document>'}"
