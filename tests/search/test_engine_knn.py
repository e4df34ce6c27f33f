"""The kNN step's gender preference, on a real embedded index: a requested gender filters; a gender read
from the look is a preference, widened to every gender when it leaves the list short (``relaxed``)."""

from __future__ import annotations

from looksync.index.base import SearchFilters
from looksync.search.engine_knn import KnnMixin
from tests.index.conftest import built_view_index, catalog_product, vectors


class _Knn(KnnMixin):
    def __init__(self, index):  # the kNN steps read only the index
        self.index = index


def test_an_inferred_gender_is_widened_when_it_leaves_the_list_short(tmp_path):
    products = [catalog_product(i, category="t_shirt", market="US", gender="women" if i < 3 else "men")
                for i in range(40)]  # fmt: skip
    index, *_ = built_view_index(tmp_path, products, vectors(40, seed=5))
    women = {p.product_id for p in products[:3]}
    knn, query = _Knn(index), vectors(1, seed=9)[0]
    filters = SearchFilters(layers=["topwear"], market="US")

    hits, how = knn._knn_with_gender(query, 10, filters, "women", None)  # read from the look: widened
    assert how == "relaxed" and len(hits) == 10 and len({h.product_id for h in hits} - women) >= 7
    hits, how = knn._knn_with_gender(query, 10, filters, "women", "women")  # asked for: kept, short
    assert how == "requested" and {h.product_id for h in hits} == women
    hits, how = knn._knn_with_gender(query, 3, filters, "women", None)  # enough of them: kept
    assert how == "inferred" and {h.product_id for h in hits} == women
    hits, how = knn._knn_with_gender(query, 10, filters, None, None)
    assert how == "none" and len(hits) == 10
    # best of several query vectors (crop extents): relaxed when any of them was
    merged, how = knn._knn_best_of([query, vectors(1, seed=10)[0]], 10, filters, "women", None)
    assert how == "relaxed" and len(merged) == 10
