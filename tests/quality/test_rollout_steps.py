"""The rollout's last steps on a real embedded index: promote only the candidate that is still shadow;
stop leaves live as it was and drops the candidate."""

from __future__ import annotations

import pytest

from looksync.index.embedded import EmbeddedIndex
from looksync.quality.rollout.steps import promote, stop
from tests.index.conftest import DIM, MODEL_ID, catalog, vectors


@pytest.fixture
def index_with_candidate(tmp_path):
    index = EmbeddedIndex(tmp_path / "index")
    live = index.create_version(MODEL_ID, DIM)
    index.upsert(live, catalog(3), vectors(3))
    index.set_live(live)
    candidate = index.create_version("model-candidate", DIM)
    index.upsert(candidate, catalog(3, model_id="model-candidate"), vectors(3, seed=2))
    index.set_shadow(candidate)
    return index, live, {"version": candidate, "live": live}


def test_stop_drops_the_candidate_and_leaves_live(index_with_candidate):
    index, live, candidate = index_with_candidate
    assert stop(index, candidate) == {"live": live, "dropped": candidate["version"]}
    assert index.live_version() == live and index.shadow_version() is None
    assert [i.name for i in index.list_versions()] == [live]
    assert stop(index, candidate)["live"] == live  # again: nothing left to do, nothing fails


def test_promote_only_the_candidate_still_in_shadow(index_with_candidate):
    index, live, candidate = index_with_candidate
    index.set_shadow(None)
    with pytest.raises(ValueError, match="not promoted"):
        promote(index, candidate)
    assert index.live_version() == live
    index.set_shadow(candidate["version"])
    assert promote(index, candidate) == {"live": candidate["version"], "previous": live}
    assert index.previous_version().name == live
