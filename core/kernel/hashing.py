"""Content hashes that name things across stages: a request (the response cache's key) and a
prompt template (its version key). Here so that the store and the stages agree on one definition."""

from __future__ import annotations

import hashlib
import json


def request_hash(request: dict) -> str:
    """Cache key: identical request content, identical key, whatever row it came from."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]


def template_text(template: str | None) -> str | None:
    """A template as it is stored and sent: line endings as "\n", no trailing whitespace at its end.
    A file saved with a final newline (every editor adds one) is the same template, not a new
    version whose requests all miss the cache."""
    if template is None:
        return None
    return template.replace("\r\n", "\n").replace("\r", "\n").rstrip()
