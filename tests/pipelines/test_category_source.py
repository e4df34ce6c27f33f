"""How each product's category was found (rule / synonym / clip) is kept in the stored product, the live
index and the run report; a term CLIP is not sure enough of stays quarantined. The CLIP model is the tiny
random-weight checkpoint the pipeline fixtures save."""

from __future__ import annotations

from looksync.catalog.clip_terms import prompt_label
from looksync.catalog.stores import ProductStore
from looksync.index.factory import open_index
from looksync.pipelines.ingest import ingest_feed
from looksync.pipelines.run_report import build_run_report
from tests.pipelines.conftest import rewrite_csv

TERMS = ["Kurta Pyjama Set", "Sherwani", "Nehru Vest"]  # in no vendor map or synonym table


def _feed_with(clean_sample, tmp_path, terms: dict[int, str]):
    """desi_threads' sample feed with the category of row i replaced by terms[i]."""
    rows = iter(range(10**6))

    def change(row):
        i = next(rows)
        return {**row, "Sub Category": terms[i]} if i in terms else row

    dst = tmp_path / "desi_threads.csv"
    rewrite_csv(clean_sample.manifest.feeds["desi_threads"], dst, change)
    return dst


def test_the_category_source_is_stored_indexed_and_reported(settings, clean_sample, tiny_encoder, tmp_path):
    from embeddings import ZeroShot

    zs = ZeroShot(tiny_encoder)
    top = zs.top(zs.label_vectors(TERMS, "category"), "category")
    (sure_term, (sure_cat, sure_p)), (unsure_term, (_, unsure_p)) = sorted(
        zip(TERMS, top, strict=True), key=lambda item: -item[1][1]
    )[:2]
    assert sure_p > unsure_p + 1e-3
    # accept the surer term only; max_wrong 1: this random-weight model would fail the real self-check
    settings = settings.model_copy(
        update={"category_clip_min_confidence": sure_p - 1e-4, "category_clip_max_wrong": 1.0}
    )
    feed = _feed_with(clean_sample, tmp_path, {2: sure_term, 4: unsure_term})
    index = open_index(settings)
    report = ingest_feed(settings, "desi_threads", feed, tiny_encoder, "run-1", index=index)

    stored = ProductStore(settings.data_dir).by_vendor("desi_threads")
    sources = {p.category_source for p in stored.values()}
    assert report.quarantined == {"unknown_category": 1}
    assert sum(report.category_sources.values()) == len(stored) and report.category_sources["clip"] == 1
    assert sources <= {"rule", "synonym", "clip"} and "rule" in sources
    [by_clip] = [p for p in stored.values() if p.category_source == "clip"]
    assert by_clip.category == sure_cat
    assert index.get(by_clip.product_id)["category_source"] == "clip"
    notes = "\n".join(report.notes)
    assert f"{prompt_label(sure_term)!r} -> {sure_cat}" in notes and f"{prompt_label(unsure_term)!r}" in notes
    assert "left unknown" in notes
    assert build_run_report("run-1", [report.__dict__])["category_sources"] == report.category_sources


def test_with_the_default_bounds_a_random_model_maps_no_category(settings, clean_sample, tiny_encoder, tmp_path):
    feed = _feed_with(clean_sample, tmp_path, {1: TERMS[0]})
    report = ingest_feed(settings, "desi_threads", feed, tiny_encoder, "run-1")
    assert report.quarantined == {"unknown_category": 1} and "clip" not in report.category_sources
    assert any("category CLIP fallback off" in n and "self-check" in n for n in report.notes)
