"""Format readers: a feed file -> one ``RawRecord`` per row, with problems found while reading.

Each reader streams its file and decodes row by row (CSV, JSON Lines) or record by record (XML), so
one badly encoded or cut-off row is reported on its own and the rows after it are still read. Only
whole-file problems (missing file, CSV header without the configured columns) raise ``FeedError``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looksync.catalog.quarantine import Reason
from looksync.catalog.vendors.config import REQUIRED_FIELDS, VendorConfig

XML_CHUNK_BYTES = 1 << 20


class FeedError(ValueError):
    """The feed file as a whole cannot be read; the message names the file."""


@dataclass
class RawRecord:
    row_ref: str  # "line 17" (1-based physical line) or "record 4"
    raw: Any  # dict when the row was parsed, else the row's text
    problem: tuple[Reason, str] | None = None
    sku_hint: str | None = None  # best-effort SKU of a row that could not be read cleanly
    line: int | None = None  # the physical line the row starts on (1-based), in every format
    # SKUs seen inside a damaged row that swallowed other rows (a CSV quote never closed): those
    # products were not read, so they must not count as vanished
    swallowed_skus: tuple[str, ...] = ()
    # digest of the row exactly as read (a CSV row's cells under its header, a JSON line, an XML record's
    # bytes); set on rows read without a problem. Change detection uses it to skip mapping a row that is
    # byte for byte the one a stored product was made from (``looksync.catalog.vendors.feed``).
    digest: bytes | None = None


def _digester(seed: bytes = b""):
    h = hashlib.blake2b(digest_size=16)
    h.update(seed)
    return h


def read_records(config: VendorConfig, path: Path) -> Iterator[RawRecord]:
    reader = READERS.get(config.format)
    if reader is None:
        raise FeedError(f"{path}: vendor {config.name} has unknown feed format {config.format!r}")
    if not path.is_file():
        raise FeedError(f"{path}: feed file not found (vendor {config.name})")
    return reader(config, path)


def has_bad_bytes(text: str) -> bool:
    """True when text decoded with ``surrogateescape`` held bytes that were not valid in the encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str, encoding: str = "utf-8") -> str:
    """Text with undecodable bytes shown as ``\\xNN`` so it can be logged and written as UTF-8."""
    return text.encode(encoding, "surrogateescape").decode(encoding, "backslashreplace")


def _text_encoding(config: VendorConfig) -> str:
    return "utf-8-sig" if config.encoding.replace("_", "-").lower() in {"utf-8", "utf8"} else config.encoding


def read_csv(config: VendorConfig, path: Path) -> Iterator[RawRecord]:
    with path.open(encoding=_text_encoding(config), errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or has_bad_bytes(",".join(header)):
            raise FeedError(f"{path}: no readable CSV header row (vendor {config.name})")
        header = [h.strip() for h in header]
        _check_header(config, path, header)
        base = _digester(repr(header).encode("utf-8", "surrogateescape"))  # one cell means one field only under one header
        line = reader.line_num
        while True:
            row_ref, first_line = f"line {line + 1}", line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a quote opened and never closed before the end of the file
                line = reader.line_num
                problem = (Reason.TRUNCATED_ROW, f"row cannot be split into fields: {exc}")
                yield RawRecord(row_ref, "", problem, line=first_line)
                continue
            line = reader.line_num
            if row:
                record = _csv_record(config, header, row, row_ref)
                record.line = first_line
                if record.problem is None:
                    digest = base.copy()
                    digest.update(repr(row).encode("utf-8", "surrogateescape"))  # repr: the cell boundaries count
                    record.digest = digest.digest()
                yield record


def _check_header(config: VendorConfig, path: Path, header: list[str]) -> None:
    missing = [config.fields[key].path for key in REQUIRED_FIELDS if config.fields[key].path not in header]
    if missing:
        raise FeedError(
            f"{path}: CSV header lacks column(s) {missing} required by vendor {config.name}; found {header}"
        )


def _csv_record(config: VendorConfig, header: list[str], row: list[str], row_ref: str) -> RawRecord:
    record = _csv_checked(config, header, row, row_ref)
    if record.problem is not None and any("\n" in cell for cell in row):
        record.swallowed_skus = _csv_swallowed_skus(config, header, row)
    return record


def _csv_swallowed_skus(config: VendorConfig, header: list[str], row: list[str]) -> tuple[str, ...]:
    """SKUs of the physical lines inside a damaged row's multi-line cells: a quote opened and never
    closed makes the csv module read the rest of the file (or up to the next stray quote) as one cell.
    Each such line is split on its own and its SKU column read; an over-approximation is harmless,
    these SKUs only keep live products from being deleted."""
    column = header.index(config.fields["sku"].path)
    found: list[str] = []
    for cell in row:
        for line in cell.split("\n")[1:]:
            try:
                fields = next(csv.reader([line]), [])
            except csv.Error:
                continue
            if len(fields) > column and fields[column].strip() and not has_bad_bytes(fields[column]):
                found.append(fields[column].strip())
    return tuple(dict.fromkeys(found))


def _csv_checked(config: VendorConfig, header: list[str], row: list[str], row_ref: str) -> RawRecord:
    values = dict(zip(header, row, strict=False))  # short rows are reported below
    sku_hint = values.get(config.fields["sku"].path) or None
    if has_bad_bytes("".join(row)):  # one check of the whole row (only escaped bytes fail to encode)
        text = printable(",".join(row), config.encoding)
        sku_hint = sku_hint if sku_hint and not has_bad_bytes(sku_hint) else None
        return RawRecord(
            row_ref,
            text,
            (Reason.BAD_ENCODING, f"row has bytes that are not valid {config.encoding}: {text[:120]!r}"),
            sku_hint,
        )
    if len(row) < len(header):
        message = f"row has {len(row)} field(s), header has {len(header)}; missing {header[len(row) :]}"
        return RawRecord(row_ref, values, (Reason.TRUNCATED_ROW, message), sku_hint)
    if len(row) > len(header):
        message = f"row has {len(row)} fields, header has {len(header)} (extra: {row[len(header) :]!r})"
        return RawRecord(row_ref, values, (Reason.INVALID_FIELD, message), sku_hint)
    return RawRecord(row_ref, values)


def read_jsonl(config: VendorConfig, path: Path) -> Iterator[RawRecord]:
    sku_path = config.fields["sku"].path
    with path.open(encoding=_text_encoding(config), errors="surrogateescape") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            text = line.rstrip("\r\n")
            record = _jsonl_record(config, text, f"line {number}", sku_path)
            record.line = number
            if record.problem is None:
                record.digest = _digester(text.encode("utf-8", "surrogateescape")).digest()
            yield record


def _jsonl_record(config: VendorConfig, line: str, row_ref: str, sku_path: str) -> RawRecord:
    try:
        record = json.loads(line)
        error = None
    except json.JSONDecodeError as exc:
        record, error = None, exc
    except RecursionError:
        hint = salvage_json_value(line, sku_path)
        return RawRecord(row_ref, line[:200], (Reason.INVALID_FIELD, "record: JSON nested too deeply to read"), hint)
    if isinstance(record, dict):
        value = get_json_path(record, sku_path)
        sku_hint = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    else:
        sku_hint = salvage_json_value(line, sku_path)
    if has_bad_bytes(line):
        text = printable(line, config.encoding)
        sku_hint = sku_hint if sku_hint and not has_bad_bytes(sku_hint) else None
        return RawRecord(
            row_ref,
            text,
            (Reason.BAD_ENCODING, f"line has bytes that are not valid {config.encoding}: {text[:120]!r}"),
            sku_hint,
        )
    if error is not None:
        return RawRecord(row_ref, line, _json_problem(line, error), sku_hint)
    if not isinstance(record, dict):
        return RawRecord(
            row_ref,
            line,
            (Reason.INVALID_FIELD, f"record: expected a JSON object, got {type(record).__name__}"),
            sku_hint,
        )
    return RawRecord(row_ref, record, sku_hint=sku_hint)


def _json_problem(line: str, error: json.JSONDecodeError) -> tuple[Reason, str]:
    """A record begun and never closed was cut off (``truncated_row``); anything else is not JSON
    (``malformed_row``): a line of text or HTML, or an object broken in its middle."""
    text = line.strip()
    where = f"{error.msg} at column {error.colno}"
    if text.startswith("{") and not text.endswith("}"):
        return Reason.TRUNCATED_ROW, f"line is cut off: a JSON object begun and never closed ({where})"
    return Reason.MALFORMED_ROW, f"line is not valid JSON ({where}): {text[:80]!r}"


def get_json_path(record: Any, path: str) -> Any:
    """The value at a key, or at a dotted path into nested objects (None when absent)."""
    if isinstance(record, dict) and path in record:
        return record[path]
    value = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def salvage_json_value(text: str, path: str) -> str | None:
    """The string or integer at ``path`` (a key or dotted keys, objects only) in JSON text that does
    not parse: cut off, nested too deeply, or with a syntax error after the field. A scan of tokens
    that tracks the keys of the enclosing objects, without recursion; a value cut off by the end of
    the text is not taken (a partial SKU would name another product)."""
    want = path.split(".")
    stack: list[list[Any]] = []  # per open container: [is_object, current key, expecting a key]
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            stack.append([token == "{", None, token == "{"])
        elif token in "}]":
            if stack:
                stack.pop()
        elif token == ",":
            if stack and stack[-1][0]:
                stack[-1][1], stack[-1][2] = None, True
        elif token == ":":
            if stack and stack[-1][0]:
                stack[-1][2] = False
        elif stack and stack[-1][0] and stack[-1][2]:  # a key
            stack[-1][1] = _json_scalar(token)
        elif len(stack) == len(want) and all(c[0] for c in stack) and [c[1] for c in stack] == want:
            if not token.startswith('"') and match.end() == len(text.rstrip()):
                return None  # a bare number at the very end may have been cut
            value = _json_scalar(token)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            return None
    return None


def _json_scalar(token: str) -> Any:
    try:
        return json.loads(token)
    except (json.JSONDecodeError, RecursionError):
        return None


def read_xml(config: VendorConfig, path: Path) -> Iterator[RawRecord]:
    tag = config.record_tag or ""
    sku_tag = config.fields["sku"].path
    with path.open("rb") as fh:
        for number, (line, chunk) in enumerate(split_xml_records(fh, tag), start=1):
            record = _xml_record(config, chunk, f"record {number}", sku_tag)
            record.line = line
            if record.problem is None:
                record.digest = _digester(chunk).digest()
            yield record


def split_xml_records(fh, tag: str) -> Iterator[tuple[int, bytes]]:
    """Yield (line it starts on, raw bytes) of each ``<tag>...</tag>`` record; a record whose end tag
    never comes (cut off) is yielded up to where the next record starts, so the records after it survive."""
    opening = re.compile(rb"<" + re.escape(tag.encode()) + rb"[\s/>]")
    closing = b"</" + tag.encode() + b">"
    buf, pos, eof = b"", 0, False
    line, counted = 1, 0  # the line at buf[counted]

    def line_at(index: int) -> int:
        nonlocal line, counted
        line, counted = line + buf.count(b"\n", counted, index), index
        return line

    while True:
        start = opening.search(buf, pos)
        if start is not None:
            end = buf.find(closing, start.end())
            following = opening.search(buf, start.end())
            if end != -1 and (following is None or end < following.start()):
                pos = end + len(closing)
                yield line_at(start.start()), buf[start.start() : pos]
                continue
            if following is not None:
                pos = following.start()
                yield line_at(start.start()), buf[start.start() : pos]
                continue
            if eof:
                yield line_at(start.start()), buf[start.start() :]
                return
            pos = start.start()
        elif eof:
            return
        else:
            pos = max(pos, len(buf) - len(tag) - 2)  # keep a possibly split start tag
        chunk = fh.read(XML_CHUNK_BYTES)
        line_at(pos)
        buf, pos, eof, counted = buf[pos:] + chunk, 0, not chunk, 0


def _xml_record(config: VendorConfig, chunk: bytes, row_ref: str, sku_tag: str) -> RawRecord:
    try:
        text = chunk.decode(config.encoding)
    except UnicodeDecodeError as exc:
        shown = chunk.decode(config.encoding, "backslashreplace")
        hint = _xml_sku_hint(chunk.decode(config.encoding, "replace"), sku_tag)
        message = f"record has bytes that are not valid {config.encoding} at byte {exc.start}: {shown[:120]!r}"
        return RawRecord(row_ref, shown, (Reason.BAD_ENCODING, message), hint)
    try:
        element = ET.fromstring(text)
    except ET.ParseError as exc:
        # expat's "no element found" / "unclosed token": the text ended inside the record
        if exc.code in (3, 5):
            problem = (Reason.TRUNCATED_ROW, f"record is cut off before its end ({exc}): {text[:120]!r}")
        else:
            problem = (Reason.MALFORMED_ROW, f"record is not well-formed XML ({exc}): {text[:120]!r}")
        return RawRecord(row_ref, text, problem, _xml_sku_hint(text, sku_tag))
    try:
        record = element_to_dict(element)
    except RecursionError:
        message = "record: XML nested too deeply to read"
        return RawRecord(row_ref, text[:200], (Reason.INVALID_FIELD, message), _xml_sku_hint(text, sku_tag))
    if not isinstance(record, dict):
        record = {}
    return RawRecord(row_ref, record, sku_hint=record.get(sku_tag) if isinstance(record.get(sku_tag), str) else None)


def _xml_sku_hint(text: str, sku_tag: str) -> str | None:
    match = re.search(rf"<{re.escape(sku_tag)}>([^<\ufffd]+)</{re.escape(sku_tag)}>", text)
    return match[1].strip() if match else None


def element_to_dict(element: ET.Element) -> Any:
    """An element's children as a dict (repeated children become a list); a leaf becomes its text."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        tag = child.tag.rsplit("}", 1)[-1]
        value = element_to_dict(child)
        if tag not in out:
            out[tag] = value
        elif isinstance(out[tag], list):
            out[tag].append(value)
        else:
            out[tag] = [out[tag], value]
    return out


READERS: dict[str, Callable[[VendorConfig, Path], Iterator[RawRecord]]] = {
    "csv": read_csv,
    "jsonl": read_jsonl,
    "xml": read_xml,
}
