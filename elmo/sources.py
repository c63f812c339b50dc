"""Which sources the pipeline reads from: an http(s) URL or a local path, nothing else.

A leaf module (standard library only) so that params validation (elmo/params/crawl.py) can check
``crawl.source`` without importing elmo.crawl, and so without making every stage depend on the
crawler's code. elmo.crawl.source re-exports it.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def source_kind(url_or_path: str) -> str:
    """``"http"`` for an http(s) URL, ``"local"`` for a path; ``ValueError`` for anything else."""
    text = str(url_or_path)
    if not text.strip():
        raise ValueError("empty source")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise ValueError(f"{text!r}: a URL needs a host")
        return "http"
    if scheme == "" or (len(scheme) == 1 and text[1:2] == ":"):  # plain path (or a drive letter)
        return "local"
    raise ValueError(f"{text!r}: only http, https and local paths are accepted (not {scheme}://)")
