"""Turn model replies into distributions over the option letters.

One parser per elicitation method, each returning a :class:`Parsed` that is either ``ok``
(probabilities aligned to the requested letters, summing to 1) or an explicit
``parse_failure`` with a reason. Parsers never raise on model output.

* Verbalize: :func:`parse_verbalized` (the paper's rule: :func:`paper_parse_verbalized`)
* Sequence: :func:`parse_sequence` (the paper's rule: :func:`paper_parse_sequence`)
* Samples: :func:`parse_single_letter`, :func:`samples_distribution`
* Log-p: :func:`letter_probs_from_top_logprobs`, :func:`letter_probs_from_logits`, and
  :func:`check_letter_probs` for probabilities a backend already computed

The exact grammar of every parser is written down in ``docs/parsers.md``.
"""

from distalign.parsing._result import OK, PARSE_FAILURE, Parsed
from distalign.parsing.logprobs import (
    check_letter_probs,
    letter_probs_from_logits,
    letter_probs_from_top_logprobs,
)
from distalign.parsing.samples import parse_single_letter, required_samples, samples_distribution
from distalign.parsing.sequence import paper_parse_sequence, parse_sequence
from distalign.parsing.verbalize import paper_parse_verbalized, parse_verbalized

__all__ = [
    "OK",
    "PARSE_FAILURE",
    "Parsed",
    "check_letter_probs",
    "letter_probs_from_logits",
    "letter_probs_from_top_logprobs",
    "paper_parse_sequence",
    "paper_parse_verbalized",
    "parse_sequence",
    "parse_single_letter",
    "parse_verbalized",
    "required_samples",
    "samples_distribution",
]
