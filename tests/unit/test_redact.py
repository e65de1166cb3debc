"""Secrets in URLs: userinfo and signed query values never reach a message, a log line or a written href."""

from __future__ import annotations

import io
import logging

from uhi.logs import RedactingFilter
from uhi.redact import redact_text, redact_url, strip_query


def test_userinfo_and_signatures_are_masked_host_and_path_kept() -> None:
    assert redact_url("https://bob:hunter2@stac.example.org/v1") == "https://***@stac.example.org/v1"
    assert redact_url("https://token@stac.example.org/v1") == "https://***@stac.example.org/v1"
    sas = "https://a.blob.core.windows.net/c/x.TIF?st=2024&se=2099&sp=rl&sv=2021&sr=c&sig=AbC%2Bd"
    assert redact_url(sas) == "https://a.blob.core.windows.net/c/x.TIF?st=***&se=***&sp=***&sv=***&sr=***&sig=***"
    presigned = "https://b.s3.amazonaws.com/k.txt?X-Amz-Credential=AKID&X-Amz-Signature=ff00&versionId=3"
    assert redact_url(presigned) == "https://b.s3.amazonaws.com/k.txt?X-Amz-Credential=***&X-Amz-Signature=***&versionId=3"
    assert redact_url("https://stac.example.org/v1/search?limit=100") == "https://stac.example.org/v1/search?limit=100"


def test_urls_inside_free_text() -> None:
    text = "STAC API http://u:p4ss@127.0.0.1:8080/v1 failed: GET 'https://h/x.tif?sig=SECRET&se=1' -> 403"
    out = redact_text(text)
    assert "p4ss" not in out and "SECRET" not in out
    assert "http://***@127.0.0.1:8080/v1" in out and "https://h/x.tif?sig=***&se=***'" in out
    assert redact_text("no url here, a=b") == "no url here, a=b"


def test_strip_query_for_written_hrefs() -> None:
    assert strip_query("https://u:p@h.org/a/b.TIF?sig=x&se=y#frag") == "https://h.org/a/b.TIF"
    assert strip_query("s3://usgs-landsat/a/b_SR_B4.TIF") == "s3://usgs-landsat/a/b_SR_B4.TIF"
    assert strip_query("scenes/x/red.tif") == "scenes/x/red.tif"


def test_log_records_are_redacted_before_formatting() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("uhi.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("read of %s failed (%d)", "https://bob:hunter2@h/x.tif?sig=S1", 3)
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "read of https://***@h/x.tif?sig=*** failed (3)\n"
