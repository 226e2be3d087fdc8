"""Refuse answers that would generate a plugin that cannot install or connect.

Runs before any file is written; on a bad answer it prints one clear line per problem
to stderr and exits 1 (cookiecutter then removes the half-made folder).
"""

import keyword
import re
import sys
from urllib.parse import urlsplit

ANSWERS = {
    "venue_name": {{ cookiecutter.venue_name | jsonify }},
    "venue_slug": {{ cookiecutter.venue_slug | jsonify }},
    "ws_url": {{ cookiecutter.ws_url | jsonify }},
    "rest_url": {{ cookiecutter.rest_url | jsonify }},
    "protocol_style": {{ cookiecutter.protocol_style | jsonify }},
    "heartbeat_style": {{ cookiecutter.heartbeat_style | jsonify }},
    "license": {{ cookiecutter.license | jsonify }},
}

CHOICES = {
    "protocol_style": ("plain-json", "json-rpc"),
    "heartbeat_style": ("websocket-ping", "server-heartbeat", "client-ping"),
    "license": ("MIT", "Apache-2.0", "BSD-3-Clause"),
}


def problems(answers: dict) -> list:
    out = []
    slug = answers["venue_slug"]
    if not slug.isidentifier() or keyword.iskeyword(slug):
        out.append(
            f"venue_slug {slug!r} is not a valid Python identifier "
            "(it becomes the import name spiceflow_<slug>): use letters, digits and underscores, "
            "starting with a letter, e.g. 'acme' or 'acme_futures'"
        )
    elif not re.fullmatch(r"[a-z][a-z0-9_]*", slug):
        out.append(f"venue_slug {slug!r} must be lowercase ASCII starting with a letter, e.g. {slug.lower().lstrip('_')!r}")
    if not answers["venue_name"].strip() or "\n" in answers["venue_name"]:
        out.append("venue_name must be a non-empty single line")
    ws = urlsplit(answers["ws_url"])
    if ws.scheme not in ("ws", "wss") or not ws.netloc:
        out.append(f"ws_url {answers['ws_url']!r} is not a WebSocket URL: it must start with ws:// or wss:// and name a host")
    rest = urlsplit(answers["rest_url"])
    if rest.scheme not in ("http", "https") or not rest.netloc:
        out.append(f"rest_url {answers['rest_url']!r} is not an HTTP URL: it must start with http:// or https:// and name a host")
    for key, allowed in CHOICES.items():
        if answers[key] not in allowed:
            out.append(f"{key} {answers[key]!r} is not one of {', '.join(allowed)}")
    return out


def main() -> int:
    found = problems(ANSWERS)
    for problem in found:
        print(f"cookiecutter-venue: error: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
