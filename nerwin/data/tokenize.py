"""The tokenizer for raw text: a regular expression, recorded in each model it tags for.

A model keeps the pattern it was trained with (``model.json``), so text is
split the same way however the default changes later. Every token keeps
its character offsets: ``text[start:end] == token``.
"""

from __future__ import annotations

import functools
import re

# Abbreviations (U.S.), the clitic 's, words and numbers with inner - . , / :
# or an apostrophe not starting 's (1996-08-22, 3.5, well-known, O'Neill),
# then any other single character.
DEFAULT_PATTERN = r"(?:[^\W\d_]\.){2,}|'s\b|\w+(?:[-.,/:]\w+|'(?!s\b)\w+)*|\S"


@functools.lru_cache(maxsize=4)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def check_pattern(pattern) -> None:
    """ValueError saying why, unless ``pattern`` is a regular expression that compiles."""
    if not isinstance(pattern, str):
        raise ValueError(f"tokenizer {pattern!r} is not a regular expression")
    try:
        _compiled(pattern)
    except re.error as err:
        raise ValueError(f"tokenizer {pattern!r} does not compile ({err})") from None


def tokenize(text: str, pattern: str = DEFAULT_PATTERN) -> tuple[list[str], list[tuple[int, int]]]:
    """Split a line into tokens and their (start, end) character offsets.

    >>> tokenize("Peter Blackburn's visit to the U.S., 1996-08-22.")[0]
    ['Peter', 'Blackburn', "'s", 'visit', 'to', 'the', 'U.S.', ',', '1996-08-22', '.']
    """
    matches = list(_compiled(pattern).finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]
