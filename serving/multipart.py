"""Multipart form parsing for the service: werkzeug's parser, without the two regular expressions it
compiles for every upload.

werkzeug's ``MultipartDecoder`` compiles two regexes around each request's boundary. Browsers and
``requests`` send a fresh random boundary with every request, so Python's regex cache never helps: the
two compiles cost about 0.25 ms a request, the largest single cost of a look answered from the cache.
Here the decoder and the parse loop are werkzeug's (same events, byte caps, part limit and errors); only
the two boundary searches are done with ``bytes.find`` and fixed checks of the bytes around the boundary,
giving the same matches as the regexes (``BoundarySearch``; tested against them on generated input).

If a werkzeug release changes what its decoder holds, ``ServiceRequest`` keeps werkzeug's own parser
(``FAST_BOUNDARY_SEARCH`` is then False and a warning is logged once at import).
"""

from __future__ import annotations

import io
import logging
import typing as t

from flask import Request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

log = logging.getLogger(__name__)

_HORIZONTAL_SPACE = frozenset(b" \t\x0b\x0c")  # the regexes' [^\S\n\r] on bytes
_LINE_BREAK_BYTES = frozenset(b"\r\n")


class BoundaryMatch:
    """What the decoder reads of a regex match: ``start()``, ``end()`` and ``group(1)`` (what follows the
    boundary: ``--`` and the rest for the closing one)."""

    __slots__ = ("_start", "_end", "_suffix")

    def __init__(self, start: int, end: int, suffix: bytes):
        self._start, self._end, self._suffix = start, end, suffix

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def group(self, index: int) -> bytes:
        if index != 1:
            raise IndexError(f"no group {index}")
        return self._suffix


class BoundarySearch:
    """``search(data, pos)`` with the matches of werkzeug's boundary regexes for one boundary:

    ``LB? --boundary (-- HS* LB? | HS* LB)`` (``line_break_required=False``, the preamble's) or the same
    with a mandatory ``LB`` first (between parts), where ``LB`` is ``\\r\\n``, ``\\n`` or ``\\r`` and ``HS`` a
    space, tab, vertical tab or form feed. As a regex search: the leftmost match at or after ``pos``,
    the line break before the boundary taken when there is one."""

    def __init__(self, boundary: bytes, line_break_required: bool):
        self.dashed = b"--" + boundary
        self.line_break_required = line_break_required

    def search(self, data: bytes | bytearray, pos: int = 0) -> BoundaryMatch | None:
        at = data.find(self.dashed, pos)
        while at >= 0:
            start = self._start(data, at, pos)
            if start is not None:
                end = self._suffix_end(data, at + len(self.dashed))
                if end is not None:
                    return BoundaryMatch(start, end, bytes(data[at + len(self.dashed) : end]))
            at = data.find(self.dashed, at + 1)
        return None

    def _start(self, data: bytes | bytearray, at: int, pos: int) -> int | None:
        if at - 2 >= pos and data[at - 2 : at] == b"\r\n":
            return at - 2
        if at - 1 >= pos and data[at - 1] in _LINE_BREAK_BYTES:
            return at - 1
        return None if self.line_break_required else at

    @staticmethod
    def _suffix_end(data: bytes | bytearray, at: int) -> int | None:
        closing = data[at : at + 2] == b"--"
        end = at + 2 if closing else at
        while end < len(data) and data[end] in _HORIZONTAL_SPACE:
            end += 1
        if data[end : end + 2] == b"\r\n":
            return end + 2
        if end < len(data) and data[end] in _LINE_BREAK_BYTES:
            return end + 1
        return end if closing else None


_PROBE_BOUNDARY = b"looksync-probe"  # werkzeug compiles its regexes for this one once (Python's regex cache)
# what werkzeug 3.1's decoder holds; only the last three depend on the boundary
_DECODER_ATTRIBUTES = {"buffer", "complete", "max_form_memory_size", "max_parts", "state", "_search_position",
                       "_parts_decoded", "boundary", "preamble_re", "boundary_re"}  # fmt: skip


def boundary_decoder(boundary: bytes, max_form_memory_size: int | None, max_parts: int | None) -> MultipartDecoder:
    """werkzeug's decoder for ``boundary``, searching for it with ``BoundarySearch``."""
    decoder = MultipartDecoder(_PROBE_BOUNDARY, max_form_memory_size, max_parts=max_parts)
    decoder.boundary = boundary
    decoder.preamble_re = BoundarySearch(boundary, line_break_required=False)
    decoder.boundary_re = BoundarySearch(boundary, line_break_required=True)
    return decoder


FAST_BOUNDARY_SEARCH = set(vars(MultipartDecoder(_PROBE_BOUNDARY))) == _DECODER_ATTRIBUTES
if not FAST_BOUNDARY_SEARCH:
    log.warning("werkzeug's MultipartDecoder holds %s, not %s: multipart uploads use werkzeug's own parser",
                sorted(vars(MultipartDecoder(_PROBE_BOUNDARY))), sorted(_DECODER_ATTRIBUTES))  # fmt: skip


class BoundarySearchParser(MultiPartParser):
    def parse(self, stream: t.IO[bytes], boundary: bytes, content_length: int | None):
        """werkzeug 3.1's ``MultiPartParser.parse``, with ``boundary_decoder``."""
        current_part: Field | File
        field_size: int | None = None
        container: t.Any
        parser = boundary_decoder(boundary, self.max_form_memory_size, self.max_form_parts)
        fields, files = [], []
        for data in _chunks(stream.read, self.buffer_size):
            parser.receive_data(data)
            event = parser.next_event()
            while not isinstance(event, (Epilogue, NeedData)):
                if isinstance(event, Field):
                    current_part, field_size, container = event, 0, []
                    write = container.append
                elif isinstance(event, File):
                    current_part, field_size = event, None
                    container = self.start_file_streaming(event, content_length)
                    write = container.write
                elif isinstance(event, Data):
                    if self.max_form_memory_size is not None and field_size is not None:
                        field_size += len(event.data)  # the decoder checks each event; this, their sum
                        if field_size > self.max_form_memory_size:
                            raise RequestEntityTooLarge()
                    write(event.data)
                    if not event.more_data:
                        if isinstance(current_part, Field):
                            charset = self.get_part_charset(current_part.headers)
                            fields.append((current_part.name, b"".join(container).decode(charset, "replace")))
                        else:
                            container.seek(0)
                            files.append((current_part.name, FileStorage(container, current_part.filename, current_part.name,
                                                                         headers=current_part.headers)))  # fmt: skip
                event = parser.next_event()
        return self.cls(fields), self.cls(files)


def _chunks(read: t.Callable[[int], bytes], size: int) -> t.Iterator[bytes | None]:
    """As werkzeug's: the stream in chunks, then None (the end)."""
    while True:
        data = read(size)
        if not data:
            break
        yield data
    yield None


class ServiceFormDataParser(FormDataParser):
    def _parse_multipart(self, stream: t.IO[bytes], mimetype: str, content_length: int | None,
                         options: dict[str, str]):  # fmt: skip
        parser = BoundarySearchParser(stream_factory=self.stream_factory, max_form_memory_size=self.max_form_memory_size,
                                      max_form_parts=self.max_form_parts, cls=self.cls)  # fmt: skip
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class ServiceRequest(Request):
    """Flask's request, parsing multipart bodies with ``ServiceFormDataParser``, file parts kept in memory."""

    if FAST_BOUNDARY_SEARCH:
        form_data_parser_class = ServiceFormDataParser

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
                         content_length: int | None = None) -> t.IO[bytes]:  # fmt: skip
        """A file part's bytes in memory, not werkzeug's temporary file past 500 kB: the service reads every
        upload whole (``serving.inputs.request_body``), a body is within ``LOOKSYNC_MAX_UPLOAD_BYTES``, and a
        look search's body is already in memory (``serving.look_hits``); writing a 1-3 MB look to disk and
        reading it back cost more than the rest of its cache hit but its sha256."""
        return io.BytesIO()
