"""The trace header: the first record, what a trace needs to be replayed."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from ..errors import InvalidRecordError
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INT64_MIN,
    MAX_HEADER_ITEMS,
    MAX_PARAM_DEPTH,
    READABLE_VERSIONS,
    UINT64_MAX,
    EventKind,
)
from .records import MapPairs, describe_value, is_int

__all__ = [
    "HEADER_FIELDS",
    "ParamValue",
    "TraceHeader",
    "current_python_version",
    "header_from_fields",
]

# --- The header -------------------------------------------------------------

#: A scenario parameter (or extension) value. Lists are accepted and kept as
#: tuples, which is also how the reader returns them.
ParamValue: TypeAlias = (
    "bool | int | float | str | bytes | tuple[ParamValue, ...] | list[ParamValue] | None"
)


def current_python_version() -> str:
    """``"3.11"``: major.minor only, so that a patch release changes no byte."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _normalize_param(value: object, where: str, depth: int) -> ParamValue:
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if is_int(value):
        if not INT64_MIN <= value <= UINT64_MAX:  # type: ignore[operator]
            raise InvalidRecordError(f"{where}: int in [-2**63, 2**64)", str(value))
        return int(value)  # type: ignore[call-overload, no-any-return]
    if type(value) in (list, tuple):
        items: Sequence[object] = value  # type: ignore[assignment]
        if depth >= MAX_PARAM_DEPTH:
            raise InvalidRecordError(
                f"{where}: lists nested at most {MAX_PARAM_DEPTH} deep", "deeper"
            )
        if len(items) > MAX_HEADER_ITEMS:
            raise InvalidRecordError(f"{where}: at most {MAX_HEADER_ITEMS} items", str(len(items)))
        return tuple(_normalize_param(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(items))
    raise InvalidRecordError(
        f"{where}: nil, bool, int, float, str, bin or a list of them", describe_value(value)
    )


def _normalize_map(value: object, where: str) -> Mapping[str, ParamValue]:
    if isinstance(value, MapPairs):
        pairs = list(value)
        keys = [k for k, _ in pairs]
        if not all(isinstance(k, str) for k in keys):
            raise InvalidRecordError(f"{where}: str keys", describe_value(keys))
        if any(a.encode() >= b.encode() for a, b in itertools.pairwise(keys)):
            raise InvalidRecordError(f"{where}: keys unique and sorted", repr(keys)[:60])
    elif isinstance(value, Mapping):
        pairs = sorted(value.items(), key=lambda kv: str(kv[0]).encode("utf-8", "surrogatepass"))
    else:
        raise InvalidRecordError(f"{where}: a map", describe_value(value))
    if len(pairs) > MAX_HEADER_ITEMS:
        raise InvalidRecordError(f"{where}: at most {MAX_HEADER_ITEMS} entries", str(len(pairs)))
    out: dict[str, ParamValue] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise InvalidRecordError(f"{where}: str keys", describe_value(key))
        out[key] = _normalize_param(item, f"{where}[{key!r}]", 0)
    return MappingProxyType(out)


def _require(ok: bool, expected: str, value: object) -> None:
    if not ok:
        raise InvalidRecordError(expected, describe_value(value))


_PYTHON_VERSION: Final = re.compile(r"[0-9]+\.[0-9]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceHeader:
    """Everything needed to replay a trace with no other argument.

    Nothing here may vary between two runs of the same content (no time, host
    or path), so two recordings of one run are byte-identical. ``parameters``
    and ``extensions`` come back as read-only mappings with sorted keys and
    lists as tuples, which is also how they are written.
    """

    #: Import path of the scenario, e.g. "examples.echo:EchoScenario".
    scenario: str
    seed: int
    #: The chooser that made the recorded decisions, e.g. "fifo", "random:7".
    chooser: str = "fifo"
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    #: Fault specs, in the order given.
    faults: tuple[str, ...] = ()
    package_version: str
    python_version: str = field(default_factory=current_python_version)
    #: Room for optional, informational data that no replayer needs to
    #: understand; new keys need no version bump (see EventKind).
    extensions: Mapping[str, ParamValue] = field(default_factory=dict)
    format_name: str = field(default=FORMAT_NAME, init=False)
    #: The version the trace is written in: FORMAT_VERSION for a new one; a
    #: trace read from a file keeps its own, so that its re-recording does too.
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _require(
            isinstance(self.scenario, str) and bool(self.scenario),
            "header.scenario: a non-empty str",
            self.scenario,
        )
        _require(
            is_int(self.seed) and INT64_MIN <= self.seed <= UINT64_MAX,
            "header.seed: int in [-2**63, 2**64)",
            self.seed,
        )
        _require(
            isinstance(self.chooser, str) and bool(self.chooser),
            "header.chooser: a non-empty str",
            self.chooser,
        )
        _require(
            isinstance(self.package_version, str),
            "header.package_version: str",
            self.package_version,
        )
        _require(
            isinstance(self.python_version, str)
            and _PYTHON_VERSION.fullmatch(self.python_version) is not None,
            'header.python_version: "major.minor"',
            self.python_version,
        )
        _require(
            type(self.format_version) is int and self.format_version in READABLE_VERSIONS,
            f"header.format_version: one of {', '.join(map(str, READABLE_VERSIONS))}",
            self.format_version,
        )
        faults = self.faults
        _require(
            type(faults) in (list, tuple) and len(faults) <= MAX_HEADER_ITEMS,
            f"header.faults: a list of at most {MAX_HEADER_ITEMS} str",
            faults,
        )
        for fault in faults:
            _require(isinstance(fault, str), "header.faults: str items", fault)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "faults", tuple(faults))
        object.__setattr__(self, "parameters", _normalize_map(self.parameters, "header.parameters"))
        object.__setattr__(self, "extensions", _normalize_map(self.extensions, "header.extensions"))

    def __hash__(self) -> int:
        # The generated hash would hash the mappingproxies, which cannot be.
        return hash(
            (
                self.scenario,
                self.seed,
                self.chooser,
                tuple(self.parameters.items()),
                self.faults,
                self.package_version,
                self.python_version,
                tuple(self.extensions.items()),
            )
        )

    def to_record(self) -> tuple[Any, ...]:
        """The HEADER record, ready to pack (maps as sorted dicts, lists as lists)."""
        return (
            EventKind.HEADER,
            self.format_name,
            self.format_version,
            self.scenario,
            dict(self.parameters),
            self.seed,
            self.chooser,
            list(self.faults),
            self.package_version,
            self.python_version,
            dict(self.extensions),
        )


#: The HEADER record's length: kind and ten fields.
HEADER_FIELDS: Final = 11


def header_from_fields(fields: Sequence[Any], version: int = FORMAT_VERSION) -> TraceHeader:
    """A TraceHeader from the decoded elements 3.. of a HEADER record of ``version``.

    The reader has checked kind, format name and version (elements 0-2). Raises
    InvalidRecordError for anything else that is wrong.
    """
    if len(fields) != HEADER_FIELDS - 3:
        raise InvalidRecordError(f"a HEADER record of {HEADER_FIELDS} items", f"{len(fields) + 3}")
    scenario, parameters, seed, chooser, faults, package, python, extensions = fields
    for name, value in (("parameters", parameters), ("extensions", extensions)):
        _require(isinstance(value, MapPairs), f"header.{name}: a map", value)
    return TraceHeader(
        scenario=scenario,
        parameters=parameters,
        seed=seed,
        chooser=chooser,
        faults=faults,
        package_version=package,
        python_version=python,
        extensions=extensions,
        format_version=version,
    )
