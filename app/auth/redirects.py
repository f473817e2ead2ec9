"""Where a `next=` parameter may send the browser after login: our own paths only."""

from __future__ import annotations

from urllib.parse import urlsplit


def local_path(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None.

    Browsers strip TAB, CR and LF from a URL and read a backslash as a slash, so `/<TAB>/evil.test` becomes
    `//evil.test`, another host. Anything outside printable ASCII is refused rather than cleaned: a real
    dashboard path never carries it.
    """
    if not target or not all("!" <= c <= "~" for c in target) or "\\" in target:
        return None
    if target.startswith("//"):  # any run of slashes names a host, "///evil.test" too
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return target
