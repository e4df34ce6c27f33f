"""The CLIP fallback for category terms the vendor maps and the shared synonyms leave unknown, driven by a
real (tiny, random-weight) CLIP model saved by the test: the nearest category is taken at or above the
threshold and recorded as ``clip``; below it, or from a model that fails its self-check, the row is
quarantined as unknown_category with a message saying why."""

from __future__ import annotations

import pytest

from looksync.catalog.clip_terms import ClipCategoryFallback, known_terms, prompt_label, self_check
from looksync.catalog.quarantine import Reason
from looksync.catalog.terms import get_category_synonyms
from looksync.catalog.vendors import read_feed

# terms no vendor map or synonym knows (checked below); the test uses whichever the model is least sure of
UNKNOWN = ["Kurta Pyjama Set", "Sherwani", "Nehru Vest", "Ethnic Wear", "Co-ord Set"]


@pytest.fixture(scope="module")
def zeroshot(tmp_path_factory):
    from embeddings import ZeroShot, load_encoder, save_random_checkpoint

    checkpoint = save_random_checkpoint("LookSync-Tiny", tmp_path_factory.mktemp("clip") / "tiny.pt", seed=7)
    return ZeroShot(load_encoder("LookSync-Tiny", str(checkpoint), device="cpu"))


@pytest.fixture(scope="module")
def least_sure(zeroshot):
    """(term, CLIP's nearest category, its probability) for the unknown term the model is least sure of,
    and the highest probability the model gives a synonym term its self-check asks about."""
    assert all(get_category_synonyms().category(t) is None for t in UNKNOWN)
    top = zeroshot.top(zeroshot.label_vectors(UNKNOWN, "category"), "category")
    term, (category, p) = min(zip(UNKNOWN, top, strict=True), key=lambda item: item[1][1])
    known = [prompt_label(t) for t, _ in known_terms()]
    best_known = max(p for _, p in zeroshot.top(zeroshot.label_vectors(known, "category"), "category"))
    assert p < best_known
    return term, category, p, best_known


def _parse(feed, tmp_path, categories, fallback):
    records = [feed.record(sku=f"SKU{i}", category=c) for i, c in enumerate(categories)]
    return list(read_feed(feed.config, feed.write(tmp_path, records), fallback))


def test_an_unknown_term_takes_clips_nearest_category_at_the_threshold(tmp_path, feeds, zeroshot, least_sure):
    term, category, p, _ = least_sure
    # max_wrong 1: this random-weight model would fail the real self-check (tested below)
    # (a hair below p: one text embedded alone and in a batch differ in the last float bits)
    fallback = ClipCategoryFallback(zeroshot, min_confidence=p - 1e-4, max_wrong=1.0)
    desi = feeds["desi_threads"]
    rows = _parse(desi, tmp_path, ["Shirts", "Trainers", term], fallback)
    assert [(r.product.category, r.product.category_source) for r in rows] == [
        ("shirt", "rule"),  # in desi_threads' own map
        ("sneakers", "synonym"),  # only in the shared synonyms
        (category, "clip"),
    ]
    guess = fallback.guesses[prompt_label(term)]
    assert guess.accepted and guess.category == category and guess.confidence == pytest.approx(p, abs=1e-3)
    assert any(repr(term) in note and category in note and "mapped" in note for note in fallback.notes())


def test_below_the_threshold_the_row_is_quarantined_naming_clips_guess(tmp_path, feeds, zeroshot, least_sure):
    term, category, p, best_known = least_sure
    threshold = (p + best_known) / 2  # above the term, below the best known term: the self-check still answers
    fallback = ClipCategoryFallback(zeroshot, min_confidence=threshold, max_wrong=1.0)
    rows = _parse(feeds["northwind_apparel"], tmp_path, ["Blouses", term], fallback)
    assert rows[0].product.category == "blouse"
    rejection = rows[1].rejection
    assert rejection.reason == Reason.UNKNOWN_CATEGORY and rejection.vendor_sku == "SKU1" and rejection.line == 2
    assert f"CLIP's nearest category {category!r} at {p:.2f} is below the threshold {threshold:g}" in rejection.message
    assert fallback.off is None and not fallback.guesses[prompt_label(term)].accepted


def test_a_model_that_fails_its_self_check_maps_nothing(tmp_path, feeds, zeroshot, least_sure):
    term = least_sure[0]
    check = self_check(zeroshot, 0.0, 0.01)  # random weights: confidently wrong on the known synonym terms
    assert not check.passed and check.wrong > 0.01 * check.accepted
    fallback = ClipCategoryFallback(zeroshot, min_confidence=0.0, max_wrong=0.01)
    rows = _parse(feeds["sakura_mode"], tmp_path, ["ジャケット", term], fallback)
    assert rows[0].product.category_source == "rule"
    assert rows[1].rejection.reason == Reason.UNKNOWN_CATEGORY
    assert "the CLIP fallback is off: the model failed its self-check" in rows[1].rejection.message
    assert fallback.notes() and "self-check" in fallback.notes()[0] and not fallback.guesses


def test_a_model_that_cannot_load_leaves_the_rows_quarantined_visibly(tmp_path, feeds):
    def broken():
        raise OSError("s3://models/vit.pt: connection refused")

    fallback = ClipCategoryFallback(broken, min_confidence=0.5)
    rows = _parse(feeds["desi_threads"], tmp_path, ["Kurta Pyjama Set"], fallback)
    assert rows[0].rejection.reason == Reason.UNKNOWN_CATEGORY
    assert "could not be loaded: OSError: s3://models/vit.pt: connection refused" in rows[0].rejection.message
    assert "connection refused" in fallback.notes()[0]
