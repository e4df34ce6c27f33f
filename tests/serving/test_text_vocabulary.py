"""The local query vocabulary's precomputed text vectors: equal to encode_texts, per model id,
saved and reloaded, and used by look search; the coarse-to-fine box search picks the same argmax."""

from __future__ import annotations

import numpy as np
import pytest

from looksync.catalog.taxonomy import get_taxonomy
from looksync.index.factory import open_index
from looksync.search.cache import MemoryCache, TextVectorTable
from looksync.search.engine import LookSearchRequest, SearchEngine
from looksync.search.querygen import compose_query, local_vocabulary
from looksync.search.regions import CANDIDATE_BOXES, COARSE_BOXES, candidate_crops, coarse_to_fine_crops, pixel_boxes


def test_vocabulary_covers_every_composed_query():
    t = get_taxonomy()
    vocab = local_vocabulary(t)
    assert len(vocab) == len(set(vocab))
    category, colour = next(iter(t.categories)), next(iter(t.colours))
    assert compose_query(t, category, "women", colour, "striped") in vocab
    assert compose_query(t, category, None, colour, "solid") in vocab
    # unisex and "no gender" compose the same query; solid adds no word
    assert len(vocab) == (len(t.genders)) * len(t.colours) * len(t.patterns) * len(t.categories)


def test_table_vectors_equal_encode_texts_and_never_answer_for_another_model(built_catalog, tmp_path):
    encoder = built_catalog.encoder
    texts = local_vocabulary(get_taxonomy())[:70]  # two batches
    table = TextVectorTable.build(encoder, texts, batch_size=64)
    for i in (0, 63, 64, 69):
        np.testing.assert_allclose(table.get(encoder.model_id, texts[i]), encoder.encode_texts([texts[i]])[0], atol=1e-5)
    assert table.get("Other@0000", texts[0]) is None
    assert table.get(encoder.model_id, "not in the vocabulary") is None

    table.save(tmp_path)
    loaded = TextVectorTable.load(tmp_path, encoder.model_id, texts)
    np.testing.assert_array_equal(loaded.vectors, table.vectors)
    assert TextVectorTable.load(tmp_path, "Other@0000", texts) is None  # another model: recomputed, not reused
    assert TextVectorTable.load(tmp_path, encoder.model_id, texts[:-1]) is None  # another vocabulary
    TextVectorTable.path_for(tmp_path, encoder.model_id).write_bytes(b"garbage")
    assert TextVectorTable.load(tmp_path, encoder.model_id, texts) is None


@pytest.fixture(scope="module")
def look_image(sample_looks):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(sample_looks[0][1])).convert("RGB")


@pytest.fixture(scope="module")
def vocab_engine(built_catalog, zeroshot, tmp_path_factory, look_image):
    settings = built_catalog.settings.model_copy(update={"text_vocab_dir": tmp_path_factory.mktemp("textvec")})
    engine = SearchEngine(settings, built_catalog.encoder, open_index(settings), MemoryCache(), zeroshot=zeroshot)
    # the whole vocabulary takes minutes on a busy CI core: this look's queries plus a slice of it
    queries = [q.query for q in engine.local_query_generator.generate(look_image).layers]
    vocabulary = local_vocabulary(get_taxonomy())
    assert set(queries) <= set(vocabulary)  # the generator writes only vocabulary queries
    engine.vocabulary = sorted(set(queries) | set(vocabulary[:40]))
    engine.precompute_text_vocabulary("blocking", texts=engine.vocabulary)
    return engine


def test_look_search_text_stage_is_a_lookup_after_precompute(vocab_engine, look_image, monkeypatch):
    assert vocab_engine.text_vocab_state == "ready"
    assert len(vocab_engine.text_table) == len(vocab_engine.vocabulary)
    calls = []
    original = vocab_engine.encoder.encode_texts
    monkeypatch.setattr(vocab_engine.encoder, "encode_texts", lambda texts, **kw: calls.append(list(texts)) or original(texts, **kw))
    response = vocab_engine.search_look(look_image, LookSearchRequest(rerank="off"))
    assert response["layers"] and not response["degraded"]
    assert calls == []  # every local query came from the table
    # a free text is not in the vocabulary: embedded (one batch) and equal to encode_texts
    vector = vocab_engine.embed_texts(["a linen summer dress with pockets", "navy blazer"], [])
    assert len(calls) == 1 and calls[0] == ["a linen summer dress with pockets", "navy blazer"]
    np.testing.assert_allclose(vector, original(["a linen summer dress with pockets", "navy blazer"]), atol=1e-5)


def test_saved_table_is_reloaded_for_the_same_model_only(vocab_engine, built_catalog, zeroshot, monkeypatch):
    settings = vocab_engine.settings
    again = SearchEngine(settings, built_catalog.encoder, vocab_engine.index, MemoryCache(), zeroshot=zeroshot)
    monkeypatch.setattr(built_catalog.encoder, "encode_texts", lambda *a, **k: pytest.fail("should load, not embed"))
    assert again.precompute_text_vocabulary("background", texts=vocab_engine.vocabulary) is None  # loaded, no thread
    assert again.text_vocab_state == "ready"
    np.testing.assert_array_equal(again.text_table.vectors, vocab_engine.text_table.vectors)
    monkeypatch.setattr(built_catalog.encoder, "model_id", "LookSync-Tiny@other")
    assert again.text_table.get(built_catalog.encoder.model_id, vocab_engine.vocabulary[0]) is None


def test_coarse_to_fine_picks_the_argmax_over_the_boxes_it_embeds(built_catalog, look):
    import io

    from PIL import Image

    encoder = built_catalog.encoder
    image = Image.open(io.BytesIO(look[1])).convert("RGB")
    texts = encoder.encode_texts(["a shirt", "a pair of shoes", "a hat"])
    crops, best = coarse_to_fine_crops(image, encoder, lambda v: v @ texts.T)
    assert len(crops.boxes) < len(CANDIDATE_BOXES)
    assert crops.boxes[: len(COARSE_BOXES)] == pixel_boxes(image.size, COARSE_BOXES)
    assert set(crops.boxes) <= set(pixel_boxes(image.size))
    full = candidate_crops(image, encoder)
    for j, i in enumerate(best):
        assert i == int(np.argmax(crops.vectors @ texts[j]))
        # each embedded crop's vector is the one the exhaustive search computes for that box
        np.testing.assert_allclose(crops.vectors[i], full.vectors[full.boxes.index(crops.boxes[i])], atol=1e-4)


def test_a_look_with_gender_and_layers_given_is_one_image_forward_and_no_text_forward(vocab_engine, look_image,
                                                                                      monkeypatch):  # fmt: skip
    """Every crop of the look (each layer's slot and its other extents) goes through the image tower in
    one batch; the queries' text vectors come from the table (no text forward)."""

    class CountingTowers:
        def __init__(self, towers):
            self.towers, self.image_batches, self.text_batches = towers, [], []

        def encode_image(self, batch):
            self.image_batches.append(len(batch))
            return self.towers.encode_image(batch)

        def encode_text(self, tokens):
            self.text_batches.append(len(tokens))
            return self.towers.encode_text(tokens)

    layers = ["outer_topwear", "topwear", "bottomwear", "footwear", "bag"]
    counting = CountingTowers(vocab_engine.encoder.towers)
    monkeypatch.setattr(vocab_engine.encoder, "towers", counting)
    placement = vocab_engine.region_finder.place(look_image, layers)
    crops = sum(len(boxes) for boxes in placement.boxes.values())
    response = vocab_engine.search_look(look_image, LookSearchRequest(gender="women", layers=layers, rerank="off"))
    searched = [layer["layer"] for layer in response["layers"]]
    assert searched and set(searched) <= set(layers)
    assert crops > len(layers)  # bottomwear has a second extent
    assert counting.image_batches == [crops]
    assert len(counting.text_batches) <= 1  # queries missing from the table: all in one text batch
