"""Method names -> method factories, and the labels figures and tables show for them."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from distalign.errors import UnknownNameError
from distalign.methods.base import ExpressionMethod

MethodFactory = Callable[..., ExpressionMethod]  # called as factory(n=...)

_METHODS: dict[str, MethodFactory] = {}
_LABELS: dict[str, str] = {}


def register_method(name: str, factory: MethodFactory, *, label: str | None = None) -> None:
    """Make ``name`` usable in run configs; a later registration of the same name replaces it.

    ``label`` defaults to the factory's ``label`` attribute (a method class has one), else
    the name.
    """
    _METHODS[name] = factory
    _LABELS[name] = label or getattr(factory, "label", "") or name


def register_label(name: str, label: str) -> None:
    """A label for a results name that is no method one runs (e.g. ``ts_logp``)."""
    _LABELS[name] = label


def unregister_method(name: str) -> None:
    """Forget ``name`` (tests register methods of their own and must not leak them)."""
    _METHODS.pop(name, None)
    _LABELS.pop(name, None)


def get_method(name: str, n: int = 30) -> ExpressionMethod:
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown method {name!r}; known: {', '.join(_METHODS)}.{hint}")
    return _METHODS[name](n=n)


def available_methods() -> list[str]:
    return list(_METHODS)


def method_label(name: str) -> str:
    """The display label of a method or results name; an unknown name is its own label."""
    return _LABELS.get(str(name), str(name))
