import pytest

from looksync.catalog.taxonomy import TaxonomyError, get_taxonomy, load_taxonomy


def test_packaged_taxonomy_is_complete():
    t = get_taxonomy()
    assert list(t.layers) == [
        "outer_topwear", "topwear", "bottomwear", "one_piece", "footwear",
        "bag", "eyewear", "headwear", "jewellery_watch", "other_accessory",
    ]  # fmt: skip
    # every layer has at least one category and every category maps to exactly one known layer
    for layer in t.layers:
        assert t.categories_of(layer), layer
    assert sum(len(t.categories_of(layer)) for layer in t.layers) == len(t.categories)
    assert {m: t.currency_of(m) for m in t.markets} == {"IN": "INR", "US": "USD", "JP": "JPY"}
    assert set(t.genders) == {"women", "men", "unisex"}
    assert t.layer_of("jeans") == "bottomwear" and t.layer_of("dress") == "one_piece"


def test_unknown_names_raise_with_the_known_ones():
    t = get_taxonomy()
    with pytest.raises(TaxonomyError, match="'kilt': not a standard category"):
        t.layer_of("kilt")
    with pytest.raises(TaxonomyError, match="known: outer_topwear"):
        t.categories_of("cape")
    with pytest.raises(TaxonomyError, match="'FR': not a market"):
        t.currency_of("FR")


def test_category_pointing_at_unknown_layer_is_rejected(tmp_path):
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text(
        """
layers: [{id: topwear, label: topwear, prompt: a top}]
categories: {kilt: {layer: lowerwear}}
genders: [{id: women, label: women's}]
markets: {IN: {currency: INR, language: en, minor_units: 2}}
colours: {red: [200, 0, 0]}
patterns: [solid]
"""
    )
    with pytest.raises(TaxonomyError, match="category 'kilt' maps to unknown layer 'lowerwear'"):
        load_taxonomy(bad)


def test_bad_colour_and_unreadable_file(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("layers: []\ncategories: {}\ngenders: []\nmarkets: {}\ncolours: {red: [300, 0, 0]}\npatterns: []\n")
    with pytest.raises(TaxonomyError, match="colour 'red'"):
        load_taxonomy(bad)
    with pytest.raises(TaxonomyError, match="cannot read taxonomy"):
        load_taxonomy(tmp_path / "missing.yaml")


def test_layer_slots_are_fractions_of_the_look(tmp_path):
    t = get_taxonomy()
    for layer in t.layers.values():
        x0, y0, x1, y1 = layer.slot
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, layer.id
    assert t.layers["headwear"].slot[1] < t.layers["topwear"].slot[1] < t.layers["footwear"].slot[1]  # head to feet
    base = "categories: {{}}\ngenders: []\nmarkets: {{}}\ncolours: {{}}\npatterns: []\nlayers: [{{id: topwear, label: t, prompt: p{}}}]\n"
    (tmp_path / "none.yaml").write_text(base.format(""))
    assert load_taxonomy(tmp_path / "none.yaml").layers["topwear"].slot is None  # optional
    for slot in ("[0.5, 0.2, 0.4, 0.6]", "[0.1, 0.2, 0.9]", "[0, 0, 1, 1.5]", "top"):
        (tmp_path / "bad.yaml").write_text(base.format(f", slot: {slot}"))
        with pytest.raises(TaxonomyError, match="layer 'topwear': slot must be"):
            load_taxonomy(tmp_path / "bad.yaml")


def test_alt_slots_are_validated_boxes(tmp_path):
    assert get_taxonomy().layers["bottomwear"].alt_slots  # shorts and skirts end above trousers
    assert get_taxonomy().layers["topwear"].alt_slots == ()
    # a bag hangs from either hand: its slots are a mirror pair about the figure's midline, so a mirrored
    # look placed by slots (the layout finder, the person's box fallback) still has its bag cropped
    bag = get_taxonomy().layers["bag"]
    mirrored = [(round(1 - x1, 6), y0, round(1 - x0, 6), y1) for x0, y0, x1, y1 in bag.alt_slots]
    assert tuple(bag.slot) in mirrored and max(bag.slot[2], *(a[2] for a in bag.alt_slots)) > 0.5 > bag.alt_slots[0][2]
    base = "categories: {{}}\ngenders: []\nmarkets: {{}}\ncolours: {{}}\npatterns: []\nlayers: [{{id: b, label: b, prompt: p{}}}]\n"
    (tmp_path / "ok.yaml").write_text(base.format(", slot: [0.3, 0.5, 0.7, 0.9], alt_slots: [[0.3, 0.5, 0.7, 0.7]]"))
    assert load_taxonomy(tmp_path / "ok.yaml").layers["b"].alt_slots == ((0.3, 0.5, 0.7, 0.7),)
    for extra, message in (
        (", slot: [0.3, 0.5, 0.7, 0.9], alt_slots: [[0.3, 0.5, 0.2, 0.7]]", "each of alt_slots must be"),
        (", slot: [0.3, 0.5, 0.7, 0.9], alt_slots: [0.3, 0.5, 0.7, 0.7]", "each of alt_slots must be"),
        (", slot: [0.3, 0.5, 0.7, 0.9], alt_slots: short", "alt_slots must be a list"),
        (", alt_slots: [[0.3, 0.5, 0.7, 0.7]]", "alt_slots needs a slot"),
    ):
        (tmp_path / "bad.yaml").write_text(base.format(extra))
        with pytest.raises(TaxonomyError, match=f"layer 'b': {message}"):
            load_taxonomy(tmp_path / "bad.yaml")


def test_pose_extents_may_ask_points_only_to_be_in_the_look(tmp_path):
    # bottomwear's hips-to-knees extent needs the hips seen and the knees only in the look
    short = get_taxonomy().layers["bottomwear"].pose[1]
    assert short.seen == (("left_hip", "right_hip"),) and short.framed == (("left_knee", "right_knee"),)
    assert get_taxonomy().layers["topwear"].pose[0].framed == ()  # optional
    base = ("categories: {{}}\ngenders: []\nmarkets: {{}}\ncolours: {{}}\npatterns: []\n"
            "layers: [{{id: b, label: b, prompt: p, pose: [{{points: [left_hip], seen: [[left_hip]]{}}}]}}]\n")  # fmt: skip
    (tmp_path / "ok.yaml").write_text(base.format(", framed: [[left_knee, right_knee]]"))
    assert load_taxonomy(tmp_path / "ok.yaml").layers["b"].pose[0].framed == (("left_knee", "right_knee"),)
    for extra, message in ((", framed: left_knee", "pose framed must be a list of groups"),
                           (", framed: [[]]", "framed group")):  # fmt: skip
        (tmp_path / "bad.yaml").write_text(base.format(extra))
        with pytest.raises(TaxonomyError, match=message):
            load_taxonomy(tmp_path / "bad.yaml")


def test_a_pose_extent_may_be_left_out_where_the_garment_runs_on(tmp_path):
    # bottomwear's hips-to-knees extent is not cropped where the colour runs from the thighs down the shins
    short = get_taxonomy().layers["bottomwear"].pose[1]
    assert short.unless_continuous == (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))
    assert get_taxonomy().layers["bottomwear"].pose[0].unless_continuous == ()  # optional
    base = ("categories: {{}}\ngenders: []\nmarkets: {{}}\ncolours: {{}}\npatterns: []\n"
            "layers: [{{id: b, label: b, prompt: p, pose: [{{points: [left_hip], seen: [[left_hip]]{}}}]}}]\n")  # fmt: skip
    (tmp_path / "ok.yaml").write_text(base.format(", unless_continuous: [[left_hip, left_knee, left_ankle]]"))
    assert load_taxonomy(tmp_path / "ok.yaml").layers["b"].pose[0].unless_continuous == (("left_hip", "left_knee", "left_ankle"),)
    for extra in (", unless_continuous: [[left_hip, left_knee]]", ", unless_continuous: left_hip", ", unless_continuous: [[a, '', c]]"):
        (tmp_path / "bad.yaml").write_text(base.format(extra))
        with pytest.raises(TaxonomyError, match="unless_continuous"):
            load_taxonomy(tmp_path / "bad.yaml")
