"""The request engine: typed calls, request keys and the batched send loop through the cache.

``run``, ``toy`` and anything later that asks a model something go through here: a method
turns a prompt into :class:`ProbsCall` / :class:`GenerateCall` records, the caller makes them
:class:`Request` s (cache keys) and :class:`Engine` sends what the cache lacks.
"""

from distalign.engine.calls import (
    Call,
    GenerateCall,
    ProbsCall,
    Request,
    RequestMaker,
    canonical_json,
    make_call_request,
    schema_text,
)
from distalign.engine.send import (
    GIVE_UP_AFTER,
    Engine,
    Replies,
    SendStats,
    make_batches,
    response_json,
    sent_requests,
)

__all__ = [
    "GIVE_UP_AFTER",
    "Call",
    "Engine",
    "GenerateCall",
    "ProbsCall",
    "Replies",
    "Request",
    "RequestMaker",
    "canonical_json",
    "SendStats",
    "make_batches",
    "make_call_request",
    "response_json",
    "schema_text",
    "sent_requests",
]
