"""Module globals bound to patched functions, found and replaced while a sanitizer runs.

Replacing ``time.time`` on the ``time`` module does not reach a module that
ran ``from time import time`` before: it holds its own reference to the
original function. freezegun meets the same problem and answers it by walking
``sys.modules``; so does this module, with these rules:

* **What counts as a binding.** A module global whose value *is* (identity,
  not equality) one of the originals the sanitizer replaces, under any name
  (``from time import monotonic as _now`` too). ``from random import random``
  binds the very bound method the ``random`` module exposes, so it is found
  the same way.
* **Which modules are walked.** Everything in ``sys.modules`` except the
  standard library (its bindings, such as ``queue``'s and ``threading``'s
  timeouts, wait for real on real locks and must keep the real clock), the
  ``evloop`` package (it reads no clock: the loop's seams are its clock), and
  the packages whose calls the sanitizer lets through anyway (its exempt
  callers: routing their bindings would change nothing).
* **Cheap when nothing changed.** A module's bindings are cached by the
  module object and the size of its namespace; a module is looked at again
  only when it is new (loaded, or replaced under its name) or its namespace
  grew or shrank. A run that loads no module pays a pass over
  ``sys.modules`` comparing identities and a size check per walked module.
* **Put back exactly.** Every replaced binding is remembered and put back on
  restore, but only where it still holds our wrapper: a module that rebound
  the name during the run keeps what it bound.

A module imported while the sanitizer is installed binds the wrapper itself
and keeps it after the run; the wrappers are made once per original and call
the original whenever no sanitizer owns the calling thread, so that is
harmless.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["BoundReferences"]

#: Top-level packages never walked besides the standard library (see the rules).
_NEVER_WALKED = frozenset(sys.stdlib_module_names) | {"evloop"}


class BoundReferences:
    """Finds module globals bound to replaced originals; swaps them in and out."""

    def __init__(self, exempt: Iterable[str]) -> None:
        self._skip = _NEVER_WALKED | frozenset(exempt)
        #: module name -> (module, its walked entry or None when not walked)
        self._modules: dict[str, tuple[object, _Walked | None]] = {}
        #: The walked modules, rebuilt when ``sys.modules`` holds other modules.
        self._walked: list[_Walked] = []
        #: ``sys.modules``' values when ``_walked`` was built (compared by identity).
        self._seen: list[object] = []
        #: (namespace, name, original, wrapper) of every binding replaced now.
        self._replaced: list[tuple[dict[str, Any], str, object, object]] = []

    def _refresh(self, items: list[tuple[str, object]]) -> None:
        """Bring the walked modules up to date with ``sys.modules``' ``items``."""
        modules = self._modules
        fresh: dict[str, tuple[object, _Walked | None]] = {}
        for name, module in items:
            known = modules.get(name)
            if known is None or known[0] is not module:
                namespace = getattr(module, "__dict__", None)
                walked = (
                    _Walked(namespace)
                    if isinstance(namespace, dict) and name.partition(".")[0] not in self._skip
                    else None
                )
                known = (module, walked)
            fresh[name] = known
        self._modules = fresh
        self._walked = [walked for _, walked in fresh.values() if walked is not None]
        self._seen = [module for _, module in items]

    def replace(self, wrappers: Mapping[int, tuple[object, object]]) -> int:
        """Bind every found reference to ``wrappers[id(original)]``'s wrapper; how many.

        ``wrappers`` maps ``id(original)`` to ``(original, wrapper)``.
        """
        # Two lists compare element by element, identity first, in C: a module
        # loaded, dropped or replaced under its name (a reload, pytester
        # restoring sys.modules) is noticed at the price of one list compare.
        if list(sys.modules.values()) != self._seen:
            self._refresh(list(sys.modules.items()))
        replaced = self._replaced
        for walked in self._walked:
            namespace = walked.namespace
            if len(namespace) != walked.size:
                walked.scan(wrappers)
            for key in walked.found:
                value = namespace.get(key)
                found = wrappers.get(id(value))
                if found is None or value is not found[0]:
                    continue  # rebound since it was scanned
                namespace[key] = found[1]
                replaced.append((namespace, key, value, found[1]))
        return len(replaced)

    def restore(self) -> None:
        """Put every replaced binding back, where it still holds our wrapper."""
        while self._replaced:
            namespace, key, original, wrapper = self._replaced.pop()
            if namespace.get(key) is wrapper:
                namespace[key] = original


class _Walked:
    """One walked module's namespace and the names in it bound to an original."""

    __slots__ = ("found", "namespace", "size")

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.size = -1  # scanned at its first walk
        self.found: tuple[str, ...] = ()

    def scan(self, originals: Mapping[int, object]) -> None:
        namespace = self.namespace
        self.found = tuple(
            key for key, value in list(namespace.items())
            if isinstance(key, str) and id(value) in originals
        )
        self.size = len(namespace)
