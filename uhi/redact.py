"""Secrets out of URLs before they are shown or written: userinfo and signed query strings."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url", "redact_text", "strip_query", "SECRET_QUERY_KEYS"]

# Query parameters that carry a credential or a signature: Azure SAS (sig, se, st, sp, sv, sr,
# skoid, sktid, ske, sks, skv, spr, srt, ss), AWS SigV4 presigned URLs (X-Amz-*), Google signed
# URLs (X-Goog-*), and the generic names APIs use for keys and tokens. Matched case-insensitively.
SECRET_QUERY_KEYS = re.compile(
    r"^(sig|se|st|sp|sv|sr|srt|ss|spr|skoid|sktid|skt|ske|sks|skv|x-amz-[a-z-]+|x-goog-[a-z-]+|"
    r"signature|token|access_token|api_key|apikey|key|password|pass|secret|subscription-key|"
    r"code|policy|key-pair-id|expires)$",
    re.I,
)
# scheme://user[:password]@ anywhere in free text
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/@?#'\"<>]+)@", re.I)
# name=value pairs of a query string in free text (after ? or &)
_QUERY_PAIR = re.compile(r"(?P<sep>[?&])(?P<key>[^=&#\s'\"<>]+)=(?P<value>[^&#\s'\"<>]*)")

_MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with its userinfo replaced by ``***`` and the values of secret query parameters
    (signatures, tokens, keys) replaced by ``***``; everything else is kept so the message still
    names the host and path."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Every URL in ``text`` redacted as :func:`redact_url` does (messages, log lines, JSON)."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{_MASK}@", text)

    def _pair(m: re.Match[str]) -> str:
        if SECRET_QUERY_KEYS.match(m.group("key")):
            return f"{m.group('sep')}{m.group('key')}={_MASK}"
        return m.group(0)

    return _QUERY_PAIR.sub(_pair, text)


def strip_query(href: str) -> str:
    """A remote href without userinfo, query string or fragment, for hrefs written to files.

    Signed hrefs (Planetary Computer SAS tokens, S3 presigned URLs) expire and must not be
    stored; uhi signs again at read time. Relative and local hrefs are returned unchanged.
    """
    if "://" not in href:
        return href
    parts = urlsplit(href)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
