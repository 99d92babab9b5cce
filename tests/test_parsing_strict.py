"""Strict parsers: malformed model output is a parse failure, never a guess.

Regression tests for the replies that used to be scored (a refusal read as answer I, a NaN
log-probability, a token listed three times, mixed percent and plain values, mass on a letter
that is not an option, 1 valid sample of 5), the exact grammar of each parser
(docs/parsers.md), and property tests with random and adversarial text.

New names are looked up on the module inside each test (``parsing.check_letter_probs``) so
that, against an older version of the package, each test fails on its own.
"""

from __future__ import annotations

import math
import re
import string
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import distalign.parsing as parsing
from distalign.parsing import (
    Parsed,
    letter_probs_from_logits,
    letter_probs_from_top_logprobs,
    parse_sequence,
    parse_single_letter,
    parse_verbalized,
    samples_distribution,
)

PROPERTY = settings(max_examples=200, deadline=None)
TEN = tuple("ABCDEFGHIJ")
ABCD = ("A", "B", "C", "D")
IDEOLOGY = ("Very liberal", "Liberal", "Somewhat conservative", "Very conservative")
AGREE = ("Strongly agree", "Agree", "Disagree", "Strongly disagree")


def assert_failure(parsed: Parsed, reason: str) -> None:
    assert not parsed.ok and parsed.probs is None, parsed
    assert reason in parsed.detail, parsed.detail


# === Samples: one reply ======================================================================


def test_refusal_on_a_ten_option_question_is_not_answer_i() -> None:
    refusal = "I can't answer that as a member of a demographic group."
    assert parse_single_letter(refusal, TEN) is None


def test_ai_language_model_preamble_is_not_answer_i() -> None:
    assert parse_single_letter("as an AI language model I think...", TEN) is None


@pytest.mark.parametrize(
    "reply",
    [
        "I can't answer that as a member of a demographic group.",
        "I cannot answer that.",
        "I'm sorry, but I can't provide an opinion on this.",
        "As an AI, I don't have personal opinions.",
        "I",  # fine on its own (see below), but not with more words:
        "I think so",
        "I would pick B here",
        "The answer is B",
        "The answer is (C)",
        "My answer is D.",
        "Option D",
        "Choice: A",
        "A or B",
        "B, because it is the most common view",
        "B\n\nExplanation: most people agree.",
        "a good question",
        "Answer: B because most agree",
        "B.C.",
        "AB",
        "Answers: B",
    ],
)
def test_letters_are_never_read_out_of_prose(reply: str) -> None:
    got = parse_single_letter(reply, TEN)
    assert got is None or reply == "I", got


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        (" b. ", "B"),
        ("B:", "B"),
        ("B)", "B"),
        ("(C)", "C"),
        ("[D]", "D"),
        ("**D**", "D"),
        ("**D.**", "D"),
        ("`A`", "A"),
        ("'a'", "A"),
        ('"A"', "A"),
        ("Answer: B", "B"),
        ("answer: (b)", "B"),
        ("ANSWER b.", "B"),
        ("**Answer:** C", "C"),
        ("Answer:\nC", "C"),
        ("I", "I"),
        ("I.", "I"),
    ],
)
def test_the_letter_itself_is_an_answer(reply: str, letter: str) -> None:
    assert parse_single_letter(reply, TEN) == letter


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("C. Somewhat conservative", "C"),
        ("(C) Somewhat conservative", "C"),
        ("C) somewhat  conservative.", "C"),
        ("Answer: C. Somewhat conservative", "C"),
        ("**C.** Somewhat conservative", "C"),
        ("C. Somewhat conserv", "C"),  # a reply cut short: a prefix of 4+ characters
        ("C. Some", "C"),
        ("C. Som", None),  # 3 characters: too short to be sure
        ("C. Very conservative", None),  # another option's text
        ("C Somewhat conservative", None),  # text needs a delimiter after the letter
        ("C. Somewhat conservative, as most would say", None),
        ("C. Somewhat conservative. Explanation follows", None),
        ("E. Somewhat conservative", None),  # not an option
    ],
)
def test_option_text_after_the_letter_must_be_that_options_text(
    reply: str, letter: str | None
) -> None:
    assert parse_single_letter(reply, ABCD, options=IDEOLOGY) == letter
    assert parse_single_letter(reply, ABCD, IDEOLOGY) == letter  # positional, as methods/ calls it


@pytest.mark.parametrize(
    "reply", ["B. Somewhat conservative", "(C) Agree", "Answer: C. Agree", "C) Agree"]
)
def test_without_options_trailing_text_is_a_failure(reply: str) -> None:
    assert parse_single_letter(reply, ABCD) is None


def test_option_texts_agree_with_the_letter_given() -> None:
    assert parse_single_letter("(B) Agree", ABCD, options=AGREE) == "B"
    assert parse_single_letter("B. Strongly agree", ABCD, options=AGREE) is None
    assert parse_single_letter("Answer: A. strongly AGREE!", ABCD, options=AGREE) == "A"


@pytest.mark.parametrize("options", [("Agree",), ("a", "b", "c", "d", "e"), "ABCD", [1, 2, 3, 4]])
def test_options_that_do_not_align_with_the_letters_accept_no_text(options: object) -> None:
    assert parse_single_letter("B. Agree", ABCD, options=options) is None  # type: ignore[arg-type]
    # A reply without text does not need the options.
    assert parse_single_letter("B", ABCD, options=options) == "B"  # type: ignore[arg-type]


def test_letters_that_are_not_requested_fail() -> None:
    assert parse_single_letter("K", TEN) is None
    assert parse_single_letter("Answer: Z", TEN) is None
    assert parse_single_letter("E. Agree", ABCD, options=AGREE) is None


@pytest.mark.parametrize(
    "reply",
    ["B" + ")" * 9990 + "x", "B" + "*" * 9990 + "x", "(" * 9990 + "x1", "Answer: " * 1200],
)
def test_pathological_replies_are_cheap(reply: str) -> None:
    start = time.perf_counter()
    assert parse_single_letter(reply, TEN, options=[f"option {i}" for i in range(10)]) is None
    assert time.perf_counter() - start < 1.0  # a backtracking regex took seconds here


# --- grammar round trip -------------------------------------------------------------------

WRAPS = [("", ""), ("(", ")"), ("[", "]"), ("**", "**"), ("`", "`"), ('"', '"'), ("'", "'")]
PREFIXES = ["", "Answer: ", "answer: ", "ANSWER ", "Answer:", "**Answer:** ", "Answer:\n"]


@PROPERTY
@given(
    n_letters=st.integers(1, 26),
    data=st.data(),
    prefix=st.sampled_from(PREFIXES),
    wrap=st.sampled_from(WRAPS),
    delim=st.sampled_from(["", ".", ":", ")"]),
    lower=st.booleans(),
    space=st.sampled_from(["", " ", "\n", "  \t"]),
)
def test_replies_built_from_the_grammar_parse_to_their_letter(
    n_letters: int,
    data: st.DataObject,
    prefix: str,
    wrap: tuple[str, str],
    delim: str,
    lower: bool,
    space: str,
) -> None:
    letters = string.ascii_uppercase[:n_letters]
    letter = data.draw(st.sampled_from(letters))
    written = letter.lower() if lower else letter
    reply = f"{space}{prefix}{wrap[0]}{written}{wrap[1]}{delim}{space}"
    assert parse_single_letter(reply, letters) == letter
    # With the option text after it (when a delimiter or bracket ends the letter).
    options = [f"Option text number {i}" for i in range(n_letters)]
    text = options[letters.index(letter)]
    cut = data.draw(st.integers(parsing.samples.MIN_OPTION_PREFIX, len(text)))
    with_text = f"{prefix}{wrap[0]}{written}{wrap[1]}{delim} {text[:cut]}"
    expected = letter if (wrap[1] or delim) else None
    assert parse_single_letter(with_text, letters, options=options) == expected
    assert parse_single_letter(with_text, letters) is None


WORDS = [
    "I", "A", "a", "B", "C", "E", "answer", "Answer", "is", "the", "The", "option", "Option",
    "choice", "think", "would", "pick", "as", "an", "AI", "language", "model", "can't",
    "cannot", "sorry", "member", "of", "demographic", "group", "not", "sure", "maybe", "or",
    "and", "Agree", "agree", "Somewhat", "conservative", "because", "most", "people", "OK",
]  # fmt: skip


def letters_only(reply: str) -> str:
    """The reply's ASCII letters once one leading "answer" is removed."""
    without_cue = re.sub(r"^\W*answer", "", reply.strip(), count=1, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z]", "", without_cue)


@PROPERTY
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=12),
    separators=st.lists(st.sampled_from([" ", ", ", ". ", ": ", " (", ") ", "\n", "? "])),
    n_letters=st.integers(1, 26),
)
def test_prose_is_never_an_answer(words: list[str], separators: list[str], n_letters: int) -> None:
    seps = separators + [" "] * len(words)
    reply = "".join(word + sep for word, sep in zip(words, seps, strict=False)).strip()
    letters = string.ascii_uppercase[:n_letters]
    got = parse_single_letter(reply, letters)
    if got is not None:  # only a reply that is the letter itself, with wrappers or "Answer:"
        assert letters_only(reply).upper() == got, reply
    # Option texts made of other words never turn prose into an answer either. (They share no
    # word with WORDS: "A. Option" is a cut-short echo of an option "Option ...", a valid answer.)
    options = [f"Zebra text number {i}" for i in range(n_letters)]
    with_options = parse_single_letter(reply, letters, options=options)
    assert with_options is None or letters_only(reply).upper() == with_options, reply


@PROPERTY
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(alphabet=string.ascii_letters + " .,:;()[]*'\"`\n!?", max_size=80),
        st.text(alphabet="ABCDEFGHIJ abij.:()*", max_size=12),
    ),
    n_letters=st.integers(1, 26),
)
def test_random_text_is_an_answer_only_when_it_is_a_letter(text: str, n_letters: int) -> None:
    letters = string.ascii_uppercase[:n_letters]
    got = parse_single_letter(text, letters)
    if got is not None:
        assert got in letters
        assert letters_only(text).upper() == got, text


# === Samples: N replies ======================================================================


def test_one_valid_sample_of_five_is_a_failure() -> None:
    parsed = samples_distribution(["A", None, "I can't answer that.", "no idea", "E"], "ABCD")
    assert_failure(parsed, "only 1 valid samples (need >= 4)")
    assert "4 of 5 samples unparseable" in parsed.detail
    assert parsed.n_valid == 1 and parsed.n_invalid == 4 and parsed.raw_sum == 0.2


def test_four_valid_samples_of_five_are_enough() -> None:
    parsed = samples_distribution(["A", "B", "b.", "Answer: A", None], "ABCD")
    assert parsed.ok and parsed.probs == (0.5, 0.5, 0.0, 0.0)
    assert parsed.n_valid == 4 and parsed.n_invalid == 1
    assert parsed.detail == "1 of 5 samples unparseable"


def test_thirty_samples_need_twenty_seven_valid() -> None:
    assert samples_distribution(["A"] * 27 + [None] * 3, "AB").ok
    parsed = samples_distribution(["A"] * 26 + ["maybe"] * 4, "AB")
    assert_failure(parsed, "only 26 valid samples (need >= 27)")
    assert parsed.n_invalid == 4


@pytest.mark.parametrize(("n", "required"), [(1, 1), (2, 1), (3, 2), (5, 4), (10, 9), (30, 27)])
def test_required_share_is_ninety_percent_rounded_down(n: int, required: int) -> None:
    assert parsing.required_samples(n) == required
    assert not samples_distribution(["A"] * (required - 1) + [None] * (n - required + 1), "AB").ok
    assert samples_distribution(["A"] * required + [None] * (n - required), "AB").ok


def test_min_valid_overrides_the_share() -> None:
    replies = ["A", None, None, None, None]
    assert samples_distribution(replies, "AB", min_valid=1).ok
    assert_failure(samples_distribution(["A", "B"], "AB", min_valid=3), "need >= 3")
    assert samples_distribution(["A", None], "AB", min_valid=0).ok  # at least 1 regardless


def test_lost_samples_count_as_invalid() -> None:
    parsed = samples_distribution([None, None, None], "AB")
    assert_failure(parsed, "no valid samples")
    assert parsed.n_valid == 0 and parsed.n_invalid == 3


def test_samples_pass_the_option_texts_on() -> None:
    replies = ["B. Agree", "(B) Agree", "A. Strongly agree", "B"]
    assert samples_distribution(replies, ABCD, options=AGREE).probs == (0.25, 0.75, 0.0, 0.0)
    assert not samples_distribution(replies, ABCD).ok  # 1 of 4 without the option texts


def test_a_string_is_not_a_list_of_samples() -> None:
    assert_failure(samples_distribution("AAAA", "AB"), "samples are not a sequence")


def test_sequence_counts_invalid_letters() -> None:
    parsed = parse_sequence("A B E A F E", "AB", n_expected=6, min_valid=3)
    assert parsed.ok and parsed.n_valid == 3 and parsed.n_invalid == 3
    failed = parse_sequence("E E E E A B", "AB", n_expected=6)
    assert not failed.ok and failed.n_invalid == 4
    assert parse_sequence("A B A B", "AB", n_expected=4).n_invalid == 0


@PROPERTY
@given(
    replies=st.lists(
        st.one_of(st.none(), st.sampled_from(["A", "b.", "(C)", "E", "no", "The answer is A"])),
        min_size=1,
        max_size=40,
    ),
    min_valid=st.one_of(st.none(), st.integers(-1, 45)),
)
def test_samples_counts_add_up(replies: list[str | None], min_valid: int | None) -> None:
    parsed = samples_distribution(replies, "ABCD", min_valid=min_valid)
    assert parsed.n_valid is not None and parsed.n_invalid is not None
    assert parsed.n_valid + parsed.n_invalid == len(replies)
    required = (
        max(1, min_valid) if min_valid is not None else parsing.required_samples(len(replies))
    )
    assert parsed.ok == (parsed.n_valid >= required)


# === Log-p ===================================================================================


def test_nan_logprob_fails_even_on_a_token_that_is_not_a_letter() -> None:
    assert_failure(letter_probs_from_top_logprobs({"A": math.nan, "B": -1.0}, "AB"), "nan")
    parsed = letter_probs_from_top_logprobs({"A": -0.1, "The": math.nan}, "AB")
    assert_failure(parsed, "invalid value nan for token 'The'")


@pytest.mark.parametrize(
    ("top", "are_logprobs"),
    [
        ({"A": math.inf, "B": -1.0}, True),
        ({"A": -0.5, "x": math.inf}, True),
        ({"A": 0.5, "x": 2.0}, True),  # any log-prob above 0 (not rounding noise)
        ({"A": -math.inf, "B": 0.2}, False),
        ({"A": math.inf, "B": 0.2}, False),
        ({"A": 0.2, "x": math.nan}, False),
        ({"A": 0.2, "x": 1.5}, False),
    ],
)
def test_non_finite_or_impossible_values_fail(top: dict[str, float], are_logprobs: bool) -> None:
    parsed = letter_probs_from_top_logprobs(top, "AB", are_logprobs=are_logprobs)
    assert_failure(parsed, "invalid value")


def test_minus_infinity_logprob_is_probability_zero() -> None:
    parsed = letter_probs_from_top_logprobs({"A": -math.inf, "B": math.log(0.5)}, "AB")
    assert parsed.ok and parsed.probs == (0.0, 1.0) and parsed.raw_sum == pytest.approx(0.5)


def test_a_token_repeated_by_the_server_counts_once() -> None:
    top = [("A", math.log(0.95))] * 3 + [("B", math.log(0.03)), ("A", math.log(0.95))]
    parsed = letter_probs_from_top_logprobs(top, "AB")
    assert parsed.ok, parsed.detail
    assert parsed.probs == pytest.approx((0.95 / 0.98, 0.03 / 0.98))
    assert parsed.raw_sum == pytest.approx(0.98)
    assert "repeated tokens ignored: 'A', 'A', 'A'" in parsed.detail


def test_repeated_tokens_keep_the_first_value() -> None:
    top = [("B", math.log(0.5)), ("A", math.log(0.3)), ("B", math.log(0.01))]
    parsed = letter_probs_from_top_logprobs(top, "AB")
    assert parsed.probs == pytest.approx((0.3 / 0.8, 0.5 / 0.8))
    # " A" and "a" are different tokens: both count (then the mass is checked).
    over = [("A", math.log(0.7)), ("a", math.log(0.6))]
    assert_failure(letter_probs_from_top_logprobs(over, "AB"), "letter mass 1.3 exceeds 1")


def test_logits_with_nan_or_plus_infinity_fail() -> None:
    ids = {"A": [0], "B": [1]}
    assert_failure(letter_probs_from_logits([0.0, 1.0, math.nan], ids), "NaN or +inf")
    assert_failure(letter_probs_from_logits([0.0, 1.0, math.inf], ids), "NaN or +inf")
    assert letter_probs_from_logits([0.0, 0.0, -math.inf], ids).probs == (0.5, 0.5)


# --- check_letter_probs --------------------------------------------------------------------


def test_check_letter_probs_accepts_a_backends_result() -> None:
    parsed = parsing.check_letter_probs({"A": 0.25, "B": 0.75}, 0.8, ["A", "B"])
    assert parsed.ok and parsed.probs == (0.25, 0.75) and parsed.raw_sum == 0.8
    assert parsed.detail == "covered mass 0.8"
    numpy_values: dict[str, object] = {"b": 0.75, "a": np.float32(0.25)}
    ordered = parsing.check_letter_probs(numpy_values, 1.0, "AB")  # type: ignore[arg-type]
    assert ordered.probs == (0.25, 0.75)
    slack = parsing.check_letter_probs({"A": 1.0}, 1.00005, "A")  # float32 rounding
    assert slack.ok


@pytest.mark.parametrize(
    ("probs", "covered", "reason"),
    [
        ({"A": math.nan, "B": 0.5}, 0.5, "non-finite probability nan for A"),
        ({"A": math.inf, "B": 0.5}, 0.5, "non-finite probability inf for A"),
        ({"A": -0.25, "B": 1.25}, 0.5, "negative probability -0.25 for A"),
        ({"A": "0.5", "B": 0.5}, 0.5, "non-numeric probability '0.5' for A"),
        ({"A": True, "B": 0.0}, 0.5, "non-numeric probability True for A"),
        ({"A": 1.0}, 0.5, "no probability for B"),
        ({"A": 0.5, "B": 0.5, "C": 0.0}, 0.5, "'C', which is not a requested letter"),
        ({"A": 0.5, "a": 0.5, "B": 0.0}, 0.5, "two probabilities for A"),
        ({"A": 0.5, "B": 0.6}, 0.5, "probabilities sum to 1.1, not 1"),
        ({"A": 0.0, "B": 0.0}, 0.5, "probabilities sum to 0, not 1"),
        ({"A": 0.0, "B": 0.0}, 0.0, "no probability on any option letter"),  # no letter in top-k
        ({"A": 0.5, "B": 0.5}, math.nan, "covered mass nan is not finite"),
        ({"A": 0.5, "B": 0.5}, math.inf, "covered mass inf is not finite"),
        ({"A": 0.5, "B": 0.5}, 0.0, "no probability on any option letter"),
        ({"A": 0.5, "B": 0.5}, -0.1, "negative covered mass"),
        ({"A": 0.5, "B": 0.5}, 3.9, "covered mass 3.9 exceeds 1"),
        ({"A": 0.5, "B": 0.5}, 1.001, "covered mass 1.001 exceeds 1"),
        ({"A": 0.5, "B": 0.5}, "0.5", "covered mass '0.5' is not a number"),
        ([0.5, 0.5], 0.5, "probabilities are not a mapping"),
    ],
)
def test_check_letter_probs_failures(probs: object, covered: object, reason: str) -> None:
    assert_failure(parsing.check_letter_probs(probs, covered, "AB"), reason)  # type: ignore[arg-type]


def test_check_letter_probs_needs_usable_letters() -> None:
    assert_failure(parsing.check_letter_probs({"A": 1.0}, 1.0, ["A", "A"]), "invalid letters")


finite = st.floats(min_value=-30, max_value=0)
bad = st.sampled_from([math.nan, math.inf])


@PROPERTY
@given(
    values=st.lists(finite, min_size=1, max_size=6),
    bad_value=bad,
    bad_at=st.integers(0, 6),
    tokens=st.lists(st.sampled_from(["A", " A", "a", "B", " b", "C", "The", "", "\n"]), min_size=7),
)
def test_any_nan_or_plus_infinity_logprob_fails(
    values: list[float], bad_value: float, bad_at: int, tokens: list[str]
) -> None:
    values = [*values[:bad_at], bad_value, *values[bad_at:]]
    pairs = list(zip(tokens, values, strict=False))
    parsed = letter_probs_from_top_logprobs(pairs, "ABC")
    assert not parsed.ok and parsed.detail.startswith("invalid value"), parsed.detail


@PROPERTY
@given(
    values=st.lists(st.floats(0, 1), min_size=1, max_size=6),
    bad_value=st.sampled_from([math.nan, math.inf, -math.inf]),
    bad_at=st.integers(0, 6),
)
def test_any_non_finite_probability_fails(
    values: list[float], bad_value: float, bad_at: int
) -> None:
    values = [*values[:bad_at], bad_value, *values[bad_at:]]
    pairs = [(token, value) for token, value in zip("ABCDEFGH", values, strict=False)]
    assert not letter_probs_from_top_logprobs(pairs, "ABC", are_logprobs=False).ok


@PROPERTY
@given(
    top=st.lists(
        st.tuples(st.sampled_from(["A", " A", "a", "B", "b", "x"]), st.floats(-20, 0)), max_size=12
    )
)
def test_top_logprobs_covered_mass_is_a_probability(top: list[tuple[str, float]]) -> None:
    parsed = letter_probs_from_top_logprobs(top, "AB")
    if parsed.ok:
        assert parsed.raw_sum is not None and 0 < parsed.raw_sum <= 1 + 1e-6
    distinct = dict(reversed(top))  # the first value of each token
    mass = math.fsum(math.exp(v) for t, v in distinct.items() if t.strip().upper() in "AB")
    if mass > 1 + 1e-6:
        assert not parsed.ok and "exceeds 1" in parsed.detail


@PROPERTY
@given(
    probs=st.lists(st.floats(0, 1), min_size=2, max_size=5),
    bad_value=st.sampled_from([math.nan, math.inf, -math.inf]),
    where=st.sampled_from(["prob", "mass"]),
    index=st.integers(0, 4),
)
def test_check_letter_probs_fails_on_any_non_finite_value(
    probs: list[float], bad_value: float, where: str, index: int
) -> None:
    letters = string.ascii_uppercase[: len(probs)]
    total = math.fsum(probs)
    assume(total > 0)
    values = {letter: p / total for letter, p in zip(letters, probs, strict=True)}
    mass = 0.7
    if where == "prob":
        values[letters[index % len(letters)]] = bad_value
    else:
        mass = bad_value
    assert not parsing.check_letter_probs(values, mass, letters).ok


@PROPERTY
@given(logits=st.lists(st.floats(-50, 50), min_size=3, max_size=10), bad_value=bad)
def test_logits_with_any_nan_or_plus_infinity_fail(logits: list[float], bad_value: float) -> None:
    vector = np.array([*logits, bad_value])
    assert not letter_probs_from_logits(vector, {"A": [0], "B": [1]}).ok


# === Verbalize ===============================================================================


def test_mixed_percent_and_plain_values_fail() -> None:
    # Used to be scored as [0.985, 0.015]: 40% read as 0.40, .6 as 0.006.
    assert_failure(parse_verbalized("{'A': 40%, B: .6,}", "AB"), "mixed percent and plain values")


@pytest.mark.parametrize(
    "reply",
    [
        "{'A': '40%', 'B': 0.6}",
        '{"A": "40%", "B": "60"}',
        "{'A': '1/3', 'B': '60%'}",  # a fraction is a plain value
        "{'A': '50%', 'B': 0, 'C': '50%'}",
        "{'A': '50%', 'B': '50%', 'F': 0.0}",  # letters that are not options count too
    ],
)
def test_mixed_scales_fail(reply: str) -> None:
    assert_failure(parse_verbalized(reply, "ABC"), "mixed percent and plain values")


@pytest.mark.parametrize(
    ("reply", "raw_sum", "scale"),
    [
        ("{'A': '30%', 'B': '70%'}", 1.0, "percentages"),
        ("{'A': '0.3%', 'B': '0.7%'}", 0.01, "percentages"),  # a % sign decides
        ("{'A': '30%', 'B': '170%'}", 2.0, "percentages"),  # whatever the total
        ("{'A': 0.3, 'B': 0.7}", 1.0, "proportions"),
        ("{'A': 1, 'B': 1}", 2.0, "proportions"),  # none above 1: proportions, any total
        ("{'A': '1/3', 'B': '2/3'}", 1.0, "proportions"),
        ("{'A': 30, 'B': 70}", 1.0, "percentages"),
        ("{'A': 40, 'B': 50}", 0.9, "percentages"),  # total 90: the lower bound
        ("{'A': 60, 'B': 50}", 1.1, "percentages"),  # total 110: the upper bound
        ("{'A': 0.5, 'B': 95}", 0.955, "percentages"),
    ],
)
def test_scale_rule(reply: str, raw_sum: float, scale: str) -> None:
    parsed = parse_verbalized(reply, "AB")
    assert parsed.ok, parsed.detail
    assert parsed.raw_sum == pytest.approx(raw_sum)
    assert parsed.detail.startswith(scale)


@pytest.mark.parametrize(
    "reply",
    [
        "{'A': 0.5, 'B': 1.5}",  # used to be read as percentages summing to 2%
        "{'A': 40, 'B': 49}",  # 89
        "{'A': 60, 'B': 51}",  # 111
        "{'A': 3, 'B': 7}",  # counts? tenths? unclear
        "{'A': '3/2', 'B': 0.5}",
    ],
)
def test_plain_values_above_one_outside_90_to_110_are_ambiguous(reply: str) -> None:
    assert_failure(parse_verbalized(reply, "AB"), "ambiguous scale")


def test_mass_on_a_letter_that_is_not_an_option_fails() -> None:
    # Used to be scored as certainty on A.
    parsed = parse_verbalized('{"Z": 0.5, "A": 0.5}', "AB")
    assert_failure(parsed, "50% of the stated total on letters that are not options (Z)")


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        ("{'A': '49%', 'B': '50%', 'E': '1%'}", True),  # exactly 1%: ignored
        ("{'A': 0.6, 'B': 0.395, 'F': 0.005}", True),
        ("{'A': '50%', 'B': '50%', 'E': '0%'}", True),
        ("{'A': '28%', 'B': '70%', 'E': '2%'}", False),  # GPT-3.5's invented "E"
        ("{'A': '48.5%', 'B': '50%', 'E': '1.5%'}", False),
        ("{'A': '50%', 'B': '50%', 'E': 'n/a'}", False),  # unknown mass
        ("{'A': '50%', 'B': '50%', 'E': '0%', 'e': '0%'}", False),  # duplicate
    ],
)
def test_letters_that_are_not_options_may_hold_at_most_one_percent(reply: str, ok: bool) -> None:
    parsed = parse_verbalized(reply, "AB")
    assert parsed.ok == ok, parsed.detail
    if ok:
        assert "extra letters ignored: " in parsed.detail


def test_ignored_extra_mass_is_reported() -> None:
    parsed = parse_verbalized("{'A': 0.6, 'B': 0.395, 'F': 0.005}", "AB")
    assert parsed.probs == pytest.approx((0.6 / 0.995, 0.395 / 0.995))
    assert "extra letters ignored: F (0.5% of the stated total)" in parsed.detail


@PROPERTY
@given(text=st.text(max_size=200).filter(lambda t: "{" not in t and ":" not in t))
def test_text_without_braces_or_pairs_fails(text: str) -> None:
    assert not parse_verbalized(text, "ABCD").ok


@PROPERTY
@given(
    words=st.lists(st.sampled_from([*WORDS, "45%", "0.3", "30", "A.", "(B)", "1/3"]), max_size=20)
)
def test_prose_with_letters_and_numbers_but_no_pairs_fails(words: list[str]) -> None:
    assert not parse_verbalized(" ".join(words), "ABCD").ok


@PROPERTY
@given(
    values=st.lists(st.integers(0, 100), min_size=2, max_size=6),
    percent=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_any_mix_of_percent_and_plain_fails(values: list[int], percent: list[bool]) -> None:
    flags = percent[: len(values)]
    assume(any(flags) and not all(flags))
    letters = string.ascii_uppercase[: len(values)]
    body = ", ".join(
        f"'{letter}': '{v}%'" if flag else f"'{letter}': {v}"
        for letter, v, flag in zip(letters, values, flags, strict=True)
    )
    assert_failure(parse_verbalized("{" + body + "}", letters), "mixed percent and plain values")


@PROPERTY
@given(values=st.lists(st.integers(0, 300), min_size=2, max_size=6))
def test_plain_numbers_above_one_are_read_only_near_one_hundred(values: list[int]) -> None:
    assume(max(values) > 1)
    letters = string.ascii_uppercase[: len(values)]
    body = ", ".join(f'"{letter}": {v}' for letter, v in zip(letters, values, strict=True))
    parsed = parse_verbalized("{" + body + "}", letters)
    assert parsed.ok == (90 <= sum(values) <= 110), parsed.detail


@PROPERTY
@given(
    weights=st.lists(st.integers(1, 100), min_size=2, max_size=5),
    extra=st.integers(0, 40),
)
def test_extra_letter_share_decides(weights: list[int], extra: int) -> None:
    letters = string.ascii_uppercase[: len(weights)]
    body = ", ".join(f"'{letter}': '{w}%'" for letter, w in zip(letters, weights, strict=True))
    parsed = parse_verbalized(f"{{{body}, 'Z': '{extra}%'}}", letters)
    share = extra / (sum(weights) + extra)
    assert parsed.ok == (share <= 0.01), parsed.detail


# === Sequence ================================================================================

lower_words = st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=10)
prose_words = st.one_of(lower_words, lower_words.map(str.capitalize))


@PROPERTY
@given(
    words=st.lists(prose_words, min_size=1, max_size=40),
    separators=st.lists(st.sampled_from([" ", ", ", ". ", "\n", ": ", " 12 ", "! "]), max_size=40),
    n_expected=st.sampled_from([None, 1, 5, 30]),
)
def test_prose_made_of_words_is_never_a_sequence(
    words: list[str], separators: list[str], n_expected: int | None
) -> None:
    seps = separators + [" "] * len(words)
    reply = "".join(word + sep for word, sep in zip(words, seps, strict=False))
    parsed = parse_sequence(reply, "ABCDE", n_expected=n_expected)
    assert not parsed.ok and parsed.detail == "no answer letters found", reply
