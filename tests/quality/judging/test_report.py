"""The MOS report against hand-computed small cases, and the CLI that prints it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from looksync.cli import main
from looksync.quality.judging import RatingStore, build_report, format_table, parse_submission, render_html
from tests.quality.judging.factories import rating, submission


def _stamped(ratings):
    """Give ratings increasing times and ids, as the store would."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [r.__class__(**{**r.__dict__, "id": i + 1, "created_at": start + timedelta(minutes=i)})
            for i, r in enumerate(ratings)]  # fmt: skip


def test_mos_and_interval_per_model_and_layer():
    ratings = _stamped([
        rating("ana", "p1", overall=5, fit=4),
        rating("ana", "p2", overall=3, fit=None),
        rating("ana", "p3", overall=4, fit=2),
        rating("ana", "s1", layer="footwear", overall=2),
        rating("ana", "p1", model="model-b", overall=1),
    ])  # fmt: skip
    report = build_report(ratings)
    a, b = report["models"]
    assert (a["model_id"], a["n"], b["model_id"], b["n"]) == ("model-a", 4, "model-b", 1)
    # overall of model-a: 5, 3, 4, 2 -> mean 3.5, s = sqrt(5/3), t(0.975, 3) = 3.1824 -> half 3.1824*s/2
    assert a["criteria"]["overall"]["mean"] == pytest.approx(3.5)
    assert a["criteria"]["overall"]["ci95"] == pytest.approx(3.1824 * (5 / 3) ** 0.5 / 2, abs=1e-4)
    # fit: 4, (n/a), 2, 2 -> n = 3, mean 8/3
    assert a["criteria"]["fit"]["n"] == 3 and a["criteria"]["fit"]["mean"] == pytest.approx(8 / 3)
    assert b["criteria"]["overall"] == {"n": 1, "mean": 1.0, "ci95": None, "low": None, "high": None, "sd": None}
    layers = {(row["model_id"], row["layer"]): row for row in report["layers"]}
    assert layers[("model-a", "topwear")]["criteria"]["overall"]["mean"] == pytest.approx(4.0)
    assert layers[("model-a", "footwear")]["n"] == 1


def test_a_rerated_item_counts_once_with_the_latest_rating():
    ratings = _stamped([rating("ana", "p1", overall=1), rating("ana", "p1", overall=5), rating("bo", "p1", overall=4)])
    report = build_report(ratings)
    assert report["n_ratings_stored"] == 3 and report["n_ratings"] == 2
    assert report["models"][0]["criteria"]["overall"]["mean"] == pytest.approx(4.5)


def test_agreement_over_items_rated_by_two_judges():
    # overall: p1 (5, 4), p2 (2, 2), p3 (3, 4), p4 rated by ana only -> left out of alpha.
    # interval alpha by hand: values 5,4,2,2,3,4 (mean 10/3); observed = 2*(1 + 0 + 1) = 4;
    # expected = 2*6*sum((x-10/3)^2)/5 = 12*(50/9)/5... sum sq dev = 25/9+4/9+16/9+16/9+1/9+4/9 = 66/9
    # -> expected = 12*(66/9)/5 = 17.6, alpha = 1 - 4/17.6
    pairs = [("p1", 5, 4), ("p2", 2, 2), ("p3", 3, 4)]
    ratings = [rating("ana", p, overall=x) for p, x, _ in pairs] + [rating("bo", p, overall=y) for p, _, y in pairs]
    ratings.append(rating("ana", "p4", overall=1))
    agreement = build_report(_stamped(ratings))["agreement"]
    assert agreement["measure"] == "Krippendorff's alpha"
    assert agreement["items"] == 3 and agreement["judges"] == 2
    assert agreement["criteria"]["overall"]["interval"] == pytest.approx(1 - 4 / 17.6)
    assert agreement["criteria"]["overall"]["items"] == 3
    # the other criteria equal overall in these ratings except where judges agree fully
    assert -1 <= agreement["criteria"]["overall"]["ordinal"] <= 1


def test_same_product_under_another_model_is_another_item():
    ratings = _stamped([rating("ana", "p1", overall=5), rating("bo", "p1", model="model-b", overall=1)])
    assert build_report(ratings)["agreement"]["items"] == 0


def test_table_and_html_layout():
    ratings = _stamped([rating("ana", "p1", overall=5, colour=4), rating("bo", "p2", overall=3, colour=4),
                        rating("ana", "p1", model="m<script>", overall=2)])  # fmt: skip
    report = build_report(ratings)
    table = format_table(report)
    lines = table.splitlines()
    assert lines[1].split() == ["model", "n", "colour", "fit", "sleeve", "fabric", "pattern", "overall"]
    assert lines[3].split()[:2] == ["m<script>", "1"]
    row = lines[4]
    assert row.startswith("model-a") and "4.00 ± 0.00" in row and "4.00 ± 12.71" in row
    page = render_html(report)
    assert "m&lt;script&gt;" in page and "<script>" not in page
    assert page.count("<tr>") == 1 + 2 + 1 + 2 + 1 + 6  # heads + model rows, layer table, agreement table


def test_cli_prints_the_table_and_json(tmp_path):
    store = RatingStore(f"sqlite:///{tmp_path}/judging/ratings.sqlite3")
    store.add(parse_submission(submission(3)))
    store.close()
    env = {"LOOKSYNC_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["judge", "report"], env=env)
    assert result.exit_code == 0, result.output
    assert "LookSync-Tiny:random" in result.output and "Krippendorff" in result.output
    result = CliRunner().invoke(main, ["judge", "report", "--json", "--html", str(tmp_path / "r.html")], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["models"][0]["n"] == 3
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_cli_names_an_unreachable_database(tmp_path):
    env = {"LOOKSYNC_JUDGING_DB_URL": "postgresql://postgres:pw@127.0.0.1:1/test"}
    result = CliRunner().invoke(main, ["judge", "report"], env=env)
    assert result.exit_code == 1 and "127.0.0.1:1/test" in result.output and "pw" not in result.output
