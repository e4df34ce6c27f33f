"""Display text from vendor feeds, made safe to store and show: HTML reduced to its text, control and
invisible formatting characters removed, whitespace collapsed, and a documented length cap.

What a field lost is returned with it (``html``, ``control``, ``truncated``) so the ingest run can
record it. The pages still escape everything they show (they set ``textContent``); this is about
what is stored and searched: a title is text, not markup.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

# characters per field; a longer value is cut at a word boundary near the cap and ends with an ellipsis
LIMITS = {"title": 300, "brand": 120, "description": 5000, "material": 120}
_MULTILINE = {"description"}

_TAG = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>")
# bidirectional overrides and isolates: they reorder what a reader sees (a title that reads backwards)
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_KEEP_FORMAT = {"\u200c", "\u200d"}  # zero-width (non-)joiners: needed by Indic scripts and emoji


class _TextOnly(HTMLParser):
    _SKIP = {"script", "style", "template", "noscript", "iframe", "object"}
    _BREAK = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def _strip_html(text: str) -> str:
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def _drop_controls(text: str, multiline: bool) -> str:
    kept = []
    for ch in text:
        if ch in "\n\t" and multiline:
            kept.append(ch)
        elif ch in "\n\t\r":
            kept.append(" ")
        elif ch in _BIDI or (unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in _KEEP_FORMAT):
            continue
        else:
            kept.append(ch)
    return "".join(kept)


def _collapse(text: str, multiline: bool) -> str:
    if not multiline:
        return " ".join(text.split())
    lines = [" ".join(line.split()) for line in text.replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _truncate(text: str, limit: int) -> str:
    cut = text[: limit - 1]
    space = cut.rfind(" ", limit - 40)
    return (cut[:space] if space > 0 else cut).rstrip() + "…"


def clean_display(field: str, value: str) -> tuple[str, list[str]]:
    """``value`` of display field ``field`` as stored, and what was removed: ``html`` (tags, or markup
    entities turned into their characters), ``control`` (control, private-use, invisible formatting and
    bidirectional-override characters), ``truncated`` (longer than ``LIMITS[field]``)."""
    changes = []
    multiline = field in _MULTILINE
    text = unicodedata.normalize("NFC", value)
    if _TAG.search(text):
        text = _strip_html(text)
        changes.append("html")
    elif "&" in text and html.unescape(text) != text:
        text = html.unescape(text)
        changes.append("html")
    dropped = _drop_controls(text, multiline)
    if any(ch not in " \n\t\r" for ch in set(text) - set(dropped)):
        changes.append("control")
    text = _collapse(dropped, multiline)
    limit = LIMITS.get(field)
    if limit is not None and len(text) > limit:
        text = _truncate(text, limit)
        changes.append("truncated")
    return text, changes
