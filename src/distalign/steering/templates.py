"""The prompt wording steering adds around a method's own: intros, turns, cues, group phrases.

What each expression method asks for, and the format of its example answers, lives in the
method's own file (``distalign/methods/<name>.py``).

``TEMPLATE_VERSION`` is part of every cache key: change any text here and bump it, so cached
responses to the old wording are never reused for the new one.

The structure follows the reference benchmark (instruction, formatting examples or solved
few-shot examples, "Your turn", question, options, answer cue); the wording is distalign's own.
"""

from __future__ import annotations

TEMPLATE_VERSION = 1

SYSTEM = "You are a helpful assistant."

FORMAT_INTRO = (
    "First, a few examples show the answer format only; their numbers say nothing about the "
    "question you will answer."
)
FEWSHOT_INTRO = (
    "Below are questions that {who} answered in a survey, each with the distribution of that "
    "group's answers. Use them to understand how this group responds. Then answer a new "
    "question for the same group; no distribution is given for it: that is for you to estimate."
)
YOUR_TURN = "Your turn."
YOUR_TURN_GROUP = (
    "Your turn. Answer for {who}. The examples above only show the format; they were about "
    "other people."
)
YOUR_TURN_FEWSHOT = "Your turn. Answer for {who}, the same group as in the examples above."
ANSWER_CUE = "Answer:"
DISTRIBUTION_CONTEXT = "Distribution of answers among {who}: {shares}."

NOBODY = "people in general"  # the group phrase when there is no steering

# Friendlier group phrases for standard mode; the paper used raw labels ("a group of Males").
GROUP_PHRASES = {
    ("POLPARTY", "Democrat"): "Democrats",
    ("POLPARTY", "Republican"): "Republicans",
    ("POLPARTY", "Independent"): "political independents",
    ("SEX", "Male"): "men",
    ("SEX", "Female"): "women",
    ("RACE", "Black"): "Black people",
    ("RACE", "White"): "White people",
    ("RACE", "Asian"): "Asian people",
    ("RACE", "Hispanic"): "Hispanic people",
}

NYT_QUESTION = "Given the information about this book, how likely is {subject} to read it?"
NYT_SUBJECT_NONE = "you"

# Formatting examples for none/persona steering: invented questions, format only.
FORMAT_EXAMPLES = [
    ("How often do you read a newspaper?", ["Daily", "Weekly", "Rarely", "Never"]),
    ("Do you think the city should build more parks?", ["Yes", "No", "Not sure"]),
    (
        "How much do you trust scientists to act in the public interest?",
        ["A great deal", "A fair amount", "Not too much", "Not at all"],
    ),
    ("Have you traveled abroad in the past year?", ["Yes", "No"]),
    (
        "Which matters most to you when buying a car?",
        ["Price", "Safety", "Fuel economy", "Looks", "Brand"],
    ),
]
