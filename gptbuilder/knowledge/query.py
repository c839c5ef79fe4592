"""The text a turn searches its knowledge with: the user's latest message, with context when it is a follow-up.

"And for 16 people?" after "How much is a cake for 8 people?" says nothing about cakes; searched alone it
finds whatever mentions people. A follow-up (it opens with a continuation such as "and", "what about",
"那", or is three words or fewer) is searched together with the user's previous message; a message that
stands on its own is searched as it is, so a change of topic is not dragged back to the last one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage

_CONTINUATION = re.compile(
    r"^\s*(?:and|or|but|also|then|so|what about|how about|same|it|its|that|those|these|this|they|them|"
    r"what if|and if|plus)\b"
    r"|^\s*(?:那|那么|还有|另外|如果|它|这个|那个|这些|那些|和|并且|以及)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+|\d+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
SHORT_WORDS = 3  # at most this many words (or twice as many CJK characters) reads as a follow-up
SHORT_CJK = 6


def is_follow_up(text: str) -> bool:
    """Whether a message leans on the one before it: a continuation opener, or too short to stand alone."""
    if _CONTINUATION.search(text):
        return True
    cjk = len(_CJK.findall(text))
    if cjk:
        return cjk <= SHORT_CJK
    return len(_WORD.findall(text)) <= SHORT_WORDS


def retrieval_query(history: Sequence[BaseMessage]) -> str:
    """The user's latest message, preceded by their previous one when the latest is a follow-up."""
    asked = [m.text for m in history if isinstance(m, HumanMessage) and m.text.strip()]
    if not asked:
        return ""
    latest = asked[-1]
    if len(asked) > 1 and is_follow_up(latest):
        return f"{asked[-2]}\n{latest}"
    return latest
