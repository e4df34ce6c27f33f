"""Human judging of match quality: ratings (1-5 per criterion) in a real database and the MOS report."""

from looksync.quality.judging.ratings import CRITERIA, InvalidRating, Rating, parse_rating, parse_submission
from looksync.quality.judging.report import build_report, format_table, render_html
from looksync.quality.judging.store import JudgingStoreError, RatingStore, database_url

__all__ = [
    "CRITERIA",
    "InvalidRating",
    "JudgingStoreError",
    "Rating",
    "RatingStore",
    "build_report",
    "database_url",
    "format_table",
    "parse_rating",
    "parse_submission",
    "render_html",
]
