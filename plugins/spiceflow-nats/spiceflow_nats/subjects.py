"""Topics <-> NATS subjects, and topic prefixes -> subscription subjects.

A topic is ``{channel}.{venue}.{symbol}``; its subject is the same three tokens behind
the optional prefix (``spiceflow.book.binance.BTCUSDT``). NATS gives ``.`` (token
separator), ``*`` and ``>`` (wildcards) and whitespace a meaning in subjects, and a
symbol may contain them (``status.<venue>.*`` carries a venue's stats), so each of them
in the symbol -- and ``%`` itself -- is percent-encoded (``*`` -> ``%2A``, its UTF-8
bytes in hex): the subject has exactly three tokens after the prefix and maps back to
the topic one to one.

ZeroMQ subscriptions are byte prefixes of the topic (``"book.bin"`` matches
``book.binance.*``); NATS matches whole tokens. A prefix becomes the narrowest subject
covering it (``book.binance.BTC`` -> ``book.binance.>``) and, when it ends inside a
token, the subscriber also checks the topic prefix itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

__all__ = [
    "BOOK_CHANNEL",
    "TRADE_CHANNEL",
    "check_prefix",
    "covers",
    "escape_token",
    "subject_for",
    "subject_of_prefix",
    "topic_for_subject",
    "unescape_token",
    "widest",
]

BOOK_CHANNEL = "book"
TRADE_CHANNEL = "trade"

_SPECIAL = re.compile(r"[.*>%\s]")
_TOKEN = re.compile(r"[^.*>\s]+")


def escape_token(text: str) -> str:
    """``text`` as one subject token (``*`` -> ``%2A``, ``.`` -> ``%2E``)."""
    if _SPECIAL.search(text) is None:
        return text
    return _SPECIAL.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def unescape_token(token: str) -> str:
    # every '%' in a token comes from escape_token ('%' itself is escaped), so
    # percent-decoding (UTF-8, as escape_token encodes) is its exact inverse
    return unquote(token, errors="strict") if "%" in token else token


def check_prefix(prefix: str) -> str:
    """The subject prefix normalised to end with ``.`` (or empty); ValueError when a
    token is empty or holds a wildcard or whitespace."""
    if not prefix:
        return ""
    tokens = prefix.removesuffix(".").split(".")
    if not all(_TOKEN.fullmatch(token) for token in tokens):
        raise ValueError(f"subject_prefix {prefix!r}: tokens must be non-empty, without '*', '>' or whitespace")
    return ".".join(tokens) + "."


def subject_for(topic: str, prefix: str = "") -> str:
    """The subject a topic is published on (``prefix`` as :func:`check_prefix` gives it)."""
    channel, venue, symbol = topic.split(".", 2)
    return f"{prefix}{escape_token(channel)}.{escape_token(venue)}.{escape_token(symbol)}"


def topic_for_subject(subject: str, prefix: str = "") -> str:
    """The topic of a subject :func:`subject_for` made."""
    channel, venue, symbol = subject[len(prefix) :].split(".", 2)
    return f"{unescape_token(channel)}.{unescape_token(venue)}.{unescape_token(symbol)}"


def subject_of_prefix(topic_prefix: str, prefix: str = "") -> tuple[str, bool]:
    """(subject, exact): the narrowest ``...>`` subject matching every topic that starts
    with ``topic_prefix``; exact when it matches no other topic."""
    *complete, partial = topic_prefix.split(".", 2)  # channel, venue, the rest
    tokens = [escape_token(token) for token in complete]
    return prefix + ".".join([*tokens, ">"]), partial == ""


def covers(wide: str, narrow: str) -> bool:
    """Whether subject ``wide`` (ending in ``>``) matches everything ``narrow`` (also
    ending in ``>``) does."""
    return narrow.startswith(wide[:-1])  # "book.>" -> "book."; ">" -> ""


def widest(subjects: Sequence[str]) -> list[str]:
    # two overlapping NATS subscriptions would each deliver the message: keep only
    # subjects no other one covers (ZeroMQ delivers a message once, whatever matches)
    unique = list(dict.fromkeys(subjects))
    return [s for s in unique if not any(o != s and covers(o, s) for o in unique)]
