"""The service's multipart parsing (serving/multipart.py): the boundary searches give the matches of
werkzeug's regexes, whole bodies parse to what werkzeug's own parser gives (fields, files, errors), and
the app compiles no regex around a request's boundary."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.formparser import MultiPartParser
from werkzeug.sansio.multipart import MultipartDecoder

from serving.multipart import (
    FAST_BOUNDARY_SEARCH,
    BoundarySearch,
    BoundarySearchParser,
    ServiceFormDataParser,
    ServiceRequest,
)

# bytes that matter around a boundary: line breaks, horizontal space, dashes, and boundary letters
_PIECES = [b"\r\n", b"\r", b"\n", b" ", b"\t", b"\x0b", b"\x0c", b"-", b"--", b"a", b"b", b"ab", b"x", b"\x00"]


def _matched(match) -> tuple[int, int, bytes] | None:
    return None if match is None else (match.start(), match.end(), bytes(match.group(1)))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boundary=st.sampled_from([b"ab", b"a", b"-a", b"a-", b"xab"]),
       pieces=st.lists(st.sampled_from(_PIECES + [b"--ab", b"--a", b"--xab", b"\r\n--ab"]), max_size=24),
       pos=st.integers(0, 30), as_bytearray=st.booleans())  # fmt: skip
# overlapping occurrences: the first is not a boundary (no line break after it), the one inside it is
@example(boundary=b"a-", pieces=[b"--", b"a", b"--", b"a", b"-", b"\r\n"], pos=0, as_bytearray=False)
def test_boundary_search_finds_what_werkzeugs_regexes_find(boundary, pieces, pos, as_bytearray):
    data = b"".join(pieces)
    data = bytearray(data) if as_bytearray else data  # the decoder searches its bytearray buffer
    decoder = MultipartDecoder(boundary)  # werkzeug's regexes for this boundary
    assert _matched(BoundarySearch(boundary, line_break_required=False).search(data, pos)) == _matched(
        decoder.preamble_re.search(data, pos)
    )
    assert _matched(BoundarySearch(boundary, line_break_required=True).search(data, pos)) == _matched(
        decoder.boundary_re.search(data, pos)
    )


def _part(boundary: bytes, name: bytes, value: bytes, filename: bytes | None, line: bytes, space: bytes) -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"' + line + b"Content-Type: application/octet-stream"
    return b"--" + boundary + space + line + disposition + line + line + value + line


_VALUE = st.lists(st.sampled_from(_PIECES + [b"--bnd", b"\r\n--bnd", b"\xff\xfe", b"png"]), max_size=30).map(b"".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(st.sampled_from([b"params", b"image", b"k"]), _VALUE,
                                st.one_of(st.none(), st.sampled_from([b"look.png", b"a b.jpg"])),
                                st.sampled_from([b"\r\n", b"\n", b"\r"]), st.sampled_from([b"", b" ", b"\t "])),
                      max_size=4),
       preamble=st.sampled_from([b"", b"junk\r\n", b"\r\n"]), closing=st.sampled_from([b"--\r\n", b"--", b"-- \n", b"", b"\r\n"]),
       cut=st.one_of(st.none(), st.integers(0, 200)), buffer_size=st.sampled_from([7, 16, 64, 65536]),
       memory=st.sampled_from([None, 40]), max_parts=st.sampled_from([None, 2]))  # fmt: skip
# a field over the memory cap, read in small chunks: the same 413
@example(parts=[(b"k", b"x" * 50, None, b"\r\n", b"")], preamble=b"", closing=b"--\r\n", cut=None, buffer_size=7,
         memory=40, max_parts=None)  # fmt: skip
def test_whole_bodies_parse_as_werkzeug_parses_them(parts, preamble, closing, cut, buffer_size, memory, max_parts):
    boundary = b"bnd"
    body = preamble + b"".join(_part(boundary, *p) for p in parts) + b"--" + boundary + closing
    if cut is not None:
        body = body[:cut]

    def parse(parser_class):
        parser = parser_class(max_form_memory_size=memory, max_form_parts=max_parts, buffer_size=buffer_size)
        try:
            form, files = parser.parse(io.BytesIO(body), boundary, len(body))
        except Exception as exc:  # noqa: BLE001 - the same refusal is what is compared
            return f"{type(exc).__name__}: {exc}"
        return (list(form.items(multi=True)),
                [(k, f.filename, f.read()) for k, f in files.items(multi=True)])  # fmt: skip

    assert parse(BoundarySearchParser) == parse(MultiPartParser)


def test_the_service_parses_uploads_without_compiling_a_regex_per_boundary(client, look, monkeypatch):
    assert FAST_BOUNDARY_SEARCH  # the installed werkzeug's decoder is the one this module was written for
    assert client.application.request_class.form_data_parser_class is ServiceFormDataParser
    compiled = []
    real_compile = re.compile
    monkeypatch.setattr(re, "compile", lambda pattern, flags=0: compiled.append(pattern) or real_compile(pattern, flags))
    _, data, truth = look
    for boundary in ("f00dcafe" * 4, "0123abcd" * 4):
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n'
                f'{{"market": "{truth["market"]}", "k": 2, "layers": ["topwear"]}}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="look.png"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
        resp = client.post("/v1/looks/search", data=body, content_type=f"multipart/form-data; boundary={boundary}")
        assert resp.status_code == 200, resp.get_json()
        assert [p["layer"] for p in resp.get_json()["layers"]] == ["topwear"]
        assert not [p for p in compiled if boundary.encode() in (p if isinstance(p, bytes) else p.encode())]


@pytest.mark.parametrize("body", [b"", b"--bnd", b"no boundary at all", b"--bnd\r\n\r\n\r\n--bnd--"])
def test_malformed_bodies_are_refused_as_werkzeug_refuses_them(body):
    def parse(parser_class):
        try:
            return parser_class().parse(io.BytesIO(body), b"bnd", len(body))
        except ValueError as exc:
            return f"ValueError: {exc}"

    ours, theirs = parse(BoundarySearchParser), parse(MultiPartParser)
    assert str(ours) == str(theirs)


def test_file_parts_past_werkzeugs_500_kb_stay_in_memory(monkeypatch):
    """An upload is read whole anyway (serving.inputs.request_body): a 2 MB look never goes to a temporary file."""
    import werkzeug.formparser
    from werkzeug.test import EnvironBuilder

    def no_disk(*args, **kwargs):
        raise AssertionError("a file part was written to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    monkeypatch.setattr(werkzeug.formparser, "TemporaryFile", no_disk, raising=False)  # where no SpooledTemporaryFile
    data = bytes(range(256)) * 8000
    form = {"params": "{}", "image": (io.BytesIO(data), "look.png", "image/png")}
    request = ServiceRequest(EnvironBuilder(method="POST", data=form).get_environ())
    assert request.files["image"].read() == data and request.form["params"] == "{}"
