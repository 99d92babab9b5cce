"""Expression methods: what to ask the backend for, and how to read its answer.

A method is one file here: its instruction wording, its example-answer format, its calls
(typed :mod:`distalign.engine` records, hashed into cache keys) and its parser, ending in a
:func:`register_method` call. Importing the file registers it; the built-ins are imported
below. ``docs/methods.md`` shows how to add one.

* ``logp``: next-token probabilities over the option letters ("A" and " A" pooled).
* ``sequence``: one generation of N letters (letters-only constrained where the backend can).
* ``verbalize``: one JSON object letter -> probability (JSON-schema constrained where it can).
* ``samples``: N independent single-letter answers at temperature 1 (not in the paper).
"""

from distalign.methods.base import ExpressionMethod
from distalign.methods.registry import (
    available_methods,
    get_method,
    method_label,
    register_label,
    register_method,
    unregister_method,
)

# The built-in methods register themselves on import, in this order (the order of
# ``available_methods``). A new built-in method is one file plus one line here.
# isort: off
from distalign.methods.logp import LogP
from distalign.methods.sequence import Sequence_
from distalign.methods.verbalize import Verbalize
from distalign.methods.samples import Samples

# isort: on

__all__ = [
    "ExpressionMethod",
    "LogP",
    "Samples",
    "Sequence_",
    "Verbalize",
    "available_methods",
    "get_method",
    "method_label",
    "register_label",
    "register_method",
    "unregister_method",
]
