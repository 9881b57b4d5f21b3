"""Label selectors: the string form (`app=web,tier!=db,env in (a,b),!legacy`) and the
structured form (`matchLabels`, `matchExpressions`), both compiled to one matcher.

Used by the store (list filtering), the API (`?labelSelector=`), controllers (which pods a
ReplicaSet owns) and Services (which pods receive traffic).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shoal.api.base import ApiModel
from shoal.api.names import check_label_key, check_labels

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class Requirement(ApiModel):
    """One `matchExpressions` entry."""

    key: str
    operator: Operator
    values: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, value: str) -> str:
        return check_label_key(value)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Requirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


class LabelSelector(ApiModel):
    """`selector` of a Deployment, ReplicaSet or Service. Empty matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[Requirement] = Field(default_factory=list)

    @field_validator("match_labels")
    @classmethod
    def _labels_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        return all(req.matches(labels) for req in self.match_expressions)

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def to_query(self) -> str:
        """The string form, for `?labelSelector=`."""
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for req in self.match_expressions:
            if req.operator == "Exists":
                parts.append(req.key)
            elif req.operator == "DoesNotExist":
                parts.append(f"!{req.key}")
            else:
                op = "in" if req.operator == "In" else "notin"
                parts.append(f"{req.key} {op} ({','.join(req.values)})")
        return ",".join(parts)


_TERM = re.compile(
    r"""\s*(?:
        (?P<neg>!)\s*(?P<nkey>[^\s,=!()]+)                          # !key
      | (?P<skey>[^\s,=!()]+)\s*(?P<setop>in|notin)\s*\((?P<vals>[^)]*)\)  # key in (a,b)
      | (?P<ekey>[^\s,=!()]+)\s*(?P<eqop>==|=|!=)\s*(?P<val>[^\s,=!()]*)   # key=v, key!=v
      | (?P<xkey>[^\s,=!()]+)                                        # key
    )\s*(?:,|$)""",
    re.VERBOSE,
)


def parse_selector(text: str) -> LabelSelector:
    """Parse the string form. Raises ValueError naming the unparseable part."""
    text = text.strip()
    labels: dict[str, str] = {}
    requirements: list[Requirement] = []
    pos = 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot parse label selector at {text[pos:]!r}")
        pos = match.end()
        if match["nkey"]:
            requirements.append(Requirement(key=match["nkey"], operator="DoesNotExist"))
        elif match["skey"]:
            values = [v.strip() for v in match["vals"].split(",") if v.strip()]
            operator: Operator = "In" if match["setop"] == "in" else "NotIn"
            requirements.append(Requirement(key=match["skey"], operator=operator, values=values))
        elif match["ekey"]:
            if match["eqop"] == "!=":
                requirements.append(
                    Requirement(key=match["ekey"], operator="NotIn", values=[match["val"]])
                )
            else:
                labels[match["ekey"]] = match["val"]
        else:
            requirements.append(Requirement(key=match["xkey"], operator="Exists"))
    return LabelSelector(match_labels=labels, match_expressions=requirements)
