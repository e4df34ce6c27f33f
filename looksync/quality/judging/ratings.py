"""A judge's rating of one returned product, and the validation of ratings sent by a client.

A rating scores one product returned for one layer of one look on six criteria, 1 (bad) to 5
(good). ``overall`` is required; the other criteria may be null when they do not apply (a sleeve
on a shoe), so a judge never has to invent a number.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CRITERIA = ("colour", "fit", "sleeve", "fabric", "pattern", "overall")
REQUIRED_CRITERIA = ("overall",)
SCORE_MIN, SCORE_MAX = 1, 5
# fields a client may send once for a whole submission instead of on every rating
SHARED_FIELDS = ("judge_id", "look_id", "look_sha256", "model_id", "index_version")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LIMITS = {"judge_id": 128, "look_id": 200, "layer": 64, "product_id": 200, "model_id": 200,
           "index_version": 200, "query_text": 2000}  # fmt: skip
_KNOWN_FIELDS = {"judge_id", "look_id", "look_sha256", "layer", "product_id", "rank", "model_id", "index_version",
                 "query_text", "scores"}  # fmt: skip


class InvalidRating(ValueError):
    """A submitted rating is malformed; ``problems`` lists every field at fault with its value."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("invalid rating: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Rating:
    judge_id: str
    layer: str
    product_id: str
    model_id: str
    scores: dict[str, int | None]
    look_id: str | None = None
    look_sha256: str | None = None
    rank: int | None = None
    index_version: str | None = None
    query_text: str | None = None
    id: int | None = field(default=None, compare=False)  # storage identity, not content
    created_at: datetime | None = field(default=None, compare=False)

    @property
    def look_key(self) -> str:
        """What identifies the look across judges: the image hash when known, else the look id."""
        return f"sha256:{self.look_sha256}" if self.look_sha256 else f"id:{self.look_id}"

    @property
    def item_key(self) -> tuple[str, str, str, str]:
        """One rated item: the same product for the same layer of the same look from the same model."""
        return (self.model_id, self.look_key, self.layer, self.product_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "judge_id": self.judge_id,
            "look_id": self.look_id,
            "look_sha256": self.look_sha256,
            "layer": self.layer,
            "product_id": self.product_id,
            "rank": self.rank,
            "model_id": self.model_id,
            "index_version": self.index_version,
            "query_text": self.query_text,
            "scores": dict(self.scores),
        }


def _text(data: Mapping[str, Any], name: str, where: str, problems: list[str], required: bool) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"{where}{name}: required (a non-empty string)")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}{name}: must be a string, got {type(value).__name__} {value!r}")
        return None
    value = value.strip()
    if len(value) > _LIMITS[name]:
        problems.append(f"{where}{name}: at most {_LIMITS[name]} characters, got {len(value)}")
        return None
    return value


def _score(value: Any, where: str, problems: list[str], required: bool) -> int | None:
    if value is None:
        if required:
            problems.append(f"{where}: required (an integer {SCORE_MIN}-{SCORE_MAX})")
        return None
    # bool is an int in Python; a JSON true is not a score. "3" is refused too: one way to send a number.
    if isinstance(value, bool) or not isinstance(value, int) or not SCORE_MIN <= value <= SCORE_MAX:
        problems.append(f"{where}: must be an integer {SCORE_MIN}-{SCORE_MAX}, got {value!r}")
        return None
    return value


def parse_rating(data: Any, *, defaults: Mapping[str, Any] | None = None, layers: Collection[str] | None = None,
                 where: str = "") -> Rating:  # fmt: skip
    """Check one rating (a JSON object) and return it; raises ``InvalidRating`` naming every bad field.

    ``defaults`` supplies the shared fields (judge, look, model, index version) of a submission;
    ``layers``, when given, is the set of known layer ids."""
    if not isinstance(data, Mapping):
        raise InvalidRating([f"{where or 'rating'}: must be an object, got {type(data).__name__}"])
    where = f"{where}." if where else ""
    merged = {**{k: v for k, v in (defaults or {}).items() if k in SHARED_FIELDS}, **data}
    problems: list[str] = []
    unknown = sorted(set(data) - _KNOWN_FIELDS)
    if unknown:
        problems.append(f"{where.rstrip('.') or 'rating'}: unknown field(s) {unknown}; known: {sorted(_KNOWN_FIELDS)}")
    judge_id = _text(merged, "judge_id", where, problems, required=True)
    look_id = _text(merged, "look_id", where, problems, required=False)
    look_sha256 = merged.get("look_sha256")
    if look_sha256 is not None:
        if not isinstance(look_sha256, str) or not _SHA256.match(look_sha256):
            problems.append(f"{where}look_sha256: must be 64 lowercase hex digits, got {look_sha256!r}")
            look_sha256 = None
    if look_id is None and merged.get("look_sha256") is None:
        problems.append(f"{where}look_id / look_sha256: at least one is required to identify the look")
    layer = _text(merged, "layer", where, problems, required=True)
    if layer is not None and layers is not None and layer not in layers:
        problems.append(f"{where}layer: {layer!r} is not a layer; known: {', '.join(layers)}")
    product_id = _text(merged, "product_id", where, problems, required=True)
    model_id = _text(merged, "model_id", where, problems, required=True)
    index_version = _text(merged, "index_version", where, problems, required=False)
    query_text = _text(merged, "query_text", where, problems, required=False)
    rank = merged.get("rank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        problems.append(f"{where}rank: must be a positive integer (1 = first result), got {rank!r}")
        rank = None
    raw_scores = merged.get("scores")
    scores: dict[str, int | None] = {}
    if not isinstance(raw_scores, Mapping):
        problems.append(f"{where}scores: required, an object with {', '.join(CRITERIA)} (1-5; null = not applicable, "
                        f"except overall)")  # fmt: skip
    else:
        extra = sorted(set(raw_scores) - set(CRITERIA))
        if extra:
            problems.append(f"{where}scores: unknown criteria {extra}; known: {', '.join(CRITERIA)}")
        for criterion in CRITERIA:
            scores[criterion] = _score(raw_scores.get(criterion), f"{where}scores.{criterion}", problems,
                                       required=criterion in REQUIRED_CRITERIA)  # fmt: skip
    if problems:
        raise InvalidRating(problems)
    return Rating(
        judge_id=judge_id, layer=layer, product_id=product_id, model_id=model_id, scores=scores, look_id=look_id,
        look_sha256=look_sha256, rank=rank, index_version=index_version, query_text=query_text,
    )


def parse_submission(body: Any, *, layers: Collection[str] | None = None, max_ratings: int = 500) -> list[Rating]:
    """A submission: ``{"judge_id", "look_id"|"look_sha256", "model_id", "index_version", "ratings": [...]}``
    with the shared fields given once (a rating may override them). All ratings are checked before any
    is kept: one bad rating refuses the whole submission, with every problem listed."""
    if not isinstance(body, Mapping):
        raise InvalidRating([f"body: must be a JSON object, got {type(body).__name__}"])
    unknown = sorted(set(body) - set(SHARED_FIELDS) - {"ratings"})
    if unknown:
        raise InvalidRating([f"body: unknown field(s) {unknown}; known: {[*SHARED_FIELDS, 'ratings']}"])
    items = body.get("ratings")
    if not isinstance(items, list) or not items:
        raise InvalidRating(["ratings: required, a non-empty list of ratings"])
    if len(items) > max_ratings:
        raise InvalidRating([f"ratings: at most {max_ratings} per submission, got {len(items)}"])
    ratings, problems = [], []
    for i, item in enumerate(items):
        try:
            ratings.append(parse_rating(item, defaults=body, layers=layers, where=f"ratings[{i}]"))
        except InvalidRating as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidRating(problems)
    return ratings
