"""The CLI's rendering of a look response."""

from looksync.client import format_look_response


def _response(products):
    return {
        "index_version": "v1",
        "model_id": "LookSync-Tiny@abc",
        "gender": "women",
        "timings_ms": {"knn": 1.5},
        "degraded": ["cache_unavailable: redis down"],
        "layers": [{"layer": "topwear", "query": "women's navy t-shirt", "products": products}],
    }


def _product(pid, score, **extra):
    return {"product_id": pid, "score": score, "title": f"t-{pid}", "brand": "B", "category": "t_shirt",
            "price": 10.0, "currency": "USD", "market": "US", **extra}  # fmt: skip


def test_rerank_score_is_shown_beside_the_knn_score():
    text = format_look_response(_response([_product("a", 0.1, rerank_score=0.9), _product("b", 0.2, rerank_score=0.5)]))
    lines = [line for line in text.splitlines() if line.strip().startswith(("1.", "2."))]
    assert lines[0].split()[1:4] == ["0.900", "(knn", "0.100)"] and "a" in lines[0]
    assert "degraded: cache_unavailable: redis down" in text
    assert "[topwear] query: \"women's navy t-shirt\"" in text


def test_plain_scores_without_rerank():
    text = format_look_response(_response([_product("a", 0.25)]))
    assert "1. 0.250  t-a  (B, t_shirt, 10.0 USD, US)  a" in text
