"""Zero-shot scoring over the taxonomy, with prompt vectors computed once per model and attribute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from embeddings import ClipEncoder, ZeroShot, load_encoder
from embeddings.zeroshot import ATTRIBUTES, load_prompt_templates
from looksync.catalog.taxonomy import DEFAULT_TAXONOMY_PATH, get_taxonomy, load_taxonomy

from .factories import noise_images, swatch

TINY = "LookSync-Tiny"


def _expected_candidates(attribute: str) -> list[str]:
    taxonomy = get_taxonomy()
    return list(
        {
            "layer": taxonomy.layers,
            "category": taxonomy.categories,
            "gender": taxonomy.genders,
            "colour": taxonomy.colours,
            "pattern": taxonomy.patterns,
        }[attribute]
    )


class CountingEncoder:
    """Wraps an encoder and counts the texts it is asked to embed."""

    def __init__(self, encoder: ClipEncoder):
        self.inner = encoder
        self.model_id = encoder.model_id
        self.calls: list[list[str]] = []

    def encode_texts(self, texts, batch_size: int = 64):
        self.calls.append(list(texts))
        return self.inner.encode_texts(texts, batch_size)


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_scores_are_distributions_over_the_taxonomys_candidates(encoder: ClipEncoder, attribute: str):
    zs = ZeroShot(encoder)
    images = noise_images(3) + [swatch(rgb) for rgb in list(get_taxonomy().colours.values())[:3]]
    vectors = encoder.encode_images(images)
    scores = zs.scores(vectors, attribute)
    assert len(scores) == len(images)
    for row in scores:
        assert list(row) == _expected_candidates(attribute)
        assert all(0.0 <= p <= 1.0 for p in row.values())
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
    top = zs.top(vectors, attribute)
    assert top == [max(row.items(), key=lambda kv: kv[1]) for row in scores]


def test_scores_follow_cosine_similarity_with_logit_scale_100(encoder: ClipEncoder):
    zs = ZeroShot(encoder)
    text = zs.text_vectors("colour")
    # a query equal to a candidate's own prompt vector must rank that candidate first
    assert [label for label, _ in zs.top(text, "colour")] == zs.candidates("colour")
    image = encoder.encode_images([swatch((200, 30, 40))])
    logits = 100.0 * image @ text.T
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(list(zs.scores(image[0], "colour")[0].values()), expected[0], atol=1e-5)


def test_prompt_vectors_come_from_the_taxonomy_and_templates(encoder: ClipEncoder):
    zs = ZeroShot(encoder)
    taxonomy = get_taxonomy()
    prompts = zs.prompts("layer")
    assert prompts["footwear"] == [f"a photo of {taxonomy.layers['footwear'].prompt}"]
    assert zs.prompts("gender")["women"] == ["a photo of women's clothing"]
    assert zs.prompts("colour")["navy"] == ["a photo of a navy garment"]
    assert zs.prompts("category")["t_shirt"] == ["a photo of a t-shirt"]
    vectors = zs.text_vectors("pattern")
    assert vectors.shape == (len(taxonomy.patterns), encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, encoder.encode_texts([p[0] for p in zs.prompts("pattern").values()]), atol=1e-6)


def test_prompt_vectors_are_computed_once_per_model_and_attribute(encoder: ClipEncoder, other_checkpoint: Path):
    counting = CountingEncoder(encoder)
    zs = ZeroShot(counting)
    vectors = encoder.encode_images(noise_images(2))
    for _ in range(3):
        for attribute in ATTRIBUTES:
            zs.scores(vectors, attribute)
            zs.top(vectors, attribute)
            zs.text_vectors(attribute)
    assert len(counting.calls) == len(ATTRIBUTES)
    assert sorted(len(texts) for texts in counting.calls) == sorted(len(_expected_candidates(a)) for a in ATTRIBUTES)

    # another model's vectors are another cache entry, even for the same ZeroShot object
    other = CountingEncoder(load_encoder(TINY, str(other_checkpoint), device="cpu"))
    zs.encoder = other
    other_layers = zs.text_vectors("layer")
    assert len(other.calls) == 1 and len(counting.calls) == len(ATTRIBUTES)
    assert not np.allclose(other_layers, ZeroShot(encoder).text_vectors("layer"))


def test_several_templates_are_averaged_into_one_unit_vector(encoder: ClipEncoder):
    templates = load_prompt_templates()
    templates["pattern"] = ["a photo of a {label} garment", "{label} fabric"]
    zs = ZeroShot(encoder, templates=templates)
    vectors = zs.text_vectors("pattern")
    assert vectors.shape == (len(get_taxonomy().patterns), encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    pair = encoder.encode_texts(["a photo of a solid garment", "solid fabric"]).mean(axis=0)
    np.testing.assert_allclose(vectors[0], pair / np.linalg.norm(pair), atol=1e-5)


def test_candidates_follow_a_given_taxonomy(encoder: ClipEncoder, tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text())
    raw["patterns"] = ["solid", "floral"]
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(raw))
    zs = ZeroShot(encoder, load_taxonomy(path))
    assert list(zs.scores(encoder.encode_images(noise_images(1)), "pattern")[0]) == ["solid", "floral"]


def test_bad_attribute_and_bad_vectors_are_refused(encoder: ClipEncoder):
    zs = ZeroShot(encoder)
    with pytest.raises(ValueError, match="'fabric': not a zero-shot attribute; known: layer, category"):
        zs.scores(encoder.encode_images(noise_images(1)), "fabric")
    with pytest.raises(ValueError, match=r"shape \(2, 64\); expected \(n, 128\)"):
        zs.scores(np.zeros((2, 64), dtype=np.float32), "layer")
