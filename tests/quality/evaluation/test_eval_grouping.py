"""Grouping quality in ``looksync eval``: pairwise precision/recall against the sample's groups.json."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from looksync.cli import main
from looksync.quality.evaluation.grouping import pairwise_scores, truth_groups


def test_pairwise_scores_count_pairs_not_groups():
    truth = {"a": "x", "b": "x", "c": "x", "d": "y", "e": "y"}  # true pairs: ab ac bc de
    predicted = {"a": "g1", "b": "g1", "c": "g2", "d": "g2", "e": None, "f": None}  # grouped: ab cd
    scores = pairwise_scores(predicted, truth, set("abcdef"))
    assert (scores["grouped_pairs"], scores["true_pairs"], scores["correct_pairs"]) == (2, 4, 1)
    assert scores["precision"] == 0.5 and scores["recall"] == 0.25
    assert scores["wrong_pairs"] == [["c", "d"]] and ["a", "c"] in scores["missed_pairs"]
    nothing = pairwise_scores({}, {}, set("ab"))
    assert nothing["precision"] == nothing["recall"] == 1.0 and nothing["grouped_pairs"] == 0


@pytest.fixture(scope="module")
def crossed_eval(tmp_path_factory):
    from looksync.demo import free_port
    from looksync.sample import generate_sample

    sample = tmp_path_factory.mktemp("eval-groups") / "sample"
    generate_sample(sample, size=36, seed=8, n_looks=1, image_base_url=f"http://127.0.0.1:{free_port()}",
                    cross_listing_rate=0.4)  # fmt: skip
    data_dir = tmp_path_factory.mktemp("eval-groups-data")
    result = CliRunner().invoke(
        main,
        ["eval", "--sample", str(sample), "--run-id", "g1", "--max-text-products", "2", "--max-similar", "4",
         "--resamples", "20", "--no-nohint", "--config", "a=LookSync-Tiny:random:0"],  # fmt: skip
        env={"LOOKSYNC_DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 0, result.output
    run_dir = data_dir / "eval" / "g1"
    return sample, run_dir, json.loads((run_dir / "eval.json").read_text()), result.output


def test_eval_scores_grouping_against_the_samples_truth(crossed_eval):
    sample, run_dir, summary, output = crossed_eval
    ((slug, scores),) = summary["grouping"].items()
    truth = truth_groups(sample / "groups.json")
    assert scores["true_pairs"] >= 10 and scores["items_listed_twice_or_more"] == len(set(truth.values()))
    assert scores["precision"] >= 0.95 and scores["recall"] >= 0.95, scores
    # the figures are what the stored groups of that index give
    from looksync.catalog.stores import ProductStore

    groups = ProductStore(run_dir / "indexes" / slug).groups()
    assert scores == pairwise_scores(groups, truth, set(groups))
    assert summary["indexes"][slug]["groups"]["groups"] == len({g for g in groups.values() if g})
    assert f"grouping ({slug}): pairwise precision {scores['precision']:.4f}, recall {scores['recall']:.4f}" in output
    page = (run_dir / "report.html").read_text()
    assert "Product groups: one item at several shops" in page and f"{scores['precision']:.4f}" in page
    # cross-listings are each other's relevant items for product -> similar
    assert summary["tasks"]["similar"]["queries_per_config"] >= 1
