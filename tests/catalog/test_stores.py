"""The product store's layout: key columns beside each record, kept through every write, and a store
written before they existed read as if it had them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from looksync.catalog.stores import EmbeddingStore, ProductStore
from tests.factories import make_product, unit_vectors


def test_a_store_of_the_old_layout_reads_and_upgrades(tmp_path):
    products = [make_product(vendor_sku=f"NW-{i}", image_hash=f"h{i}", model_id="m") for i in range(3)]
    store = ProductStore(tmp_path)
    store.path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"product_id": [p.product_id for p in products], "record": [p.model_dump_json() for p in products],
                             "group_id": pa.array(["g", None, "g"], type=pa.string())}), store.path)  # fmt: skip
    rows = store.vendor_rows("northwind_apparel", ["product_id", "vendor_sku", "image_hash", "row_key"]).to_pylist()
    assert sorted((r["vendor_sku"], r["image_hash"], r["row_key"]) for r in rows) == [("NW-0", "h0", None), ("NW-1", "h1", None), ("NW-2", "h2", None)]
    assert store.by_vendor("northwind_apparel") == {p.product_id: p for p in products}
    assert store.by_vendor("desi_threads") == {} and store.count() == 3
    store.upsert([products[0].model_copy(update={"price": 5.0})])
    assert set(pq.read_schema(store.path).names) >= {"vendor", "row_key", "image_hash"}
    assert store.groups() == {products[0].product_id: "g", products[1].product_id: None, products[2].product_id: "g"}
    assert store.get_many([products[0].product_id])[products[0].product_id].price == 5.0


def test_row_keys_are_recorded_confirmed_and_cleared_by_a_plain_write(tmp_path):
    a, b = make_product(vendor_sku="NW-A"), make_product(vendor_sku="NW-B")
    store = ProductStore(tmp_path)
    assert store.upsert([a, b], {a.product_id: "ka"}) == 2

    def keys():
        table = store.vendor_rows("northwind_apparel", ["product_id", "row_key"])
        return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))

    assert keys() == {a.product_id: "ka", b.product_id: None}
    mtime = store.path.stat().st_mtime_ns
    assert store.upsert([], {a.product_id: "ka"}) == 0 and store.path.stat().st_mtime_ns == mtime  # nothing new: no write
    store.upsert([], {b.product_id: "kb"})  # a product confirmed from its row: key recorded, record kept
    assert keys() == {a.product_id: "ka", b.product_id: "kb"} and store.get_many([b.product_id])[b.product_id] == b
    store.upsert([a.model_copy(update={"price": 1.0})])  # written any other way: no key any more
    assert keys() == {a.product_id: None, b.product_id: "kb"}
    assert store.delete([b.product_id, "nope"]) == 1 and keys() == {a.product_id: None}


def test_offer_keys_are_recorded_beside_row_keys_and_cleared_alike(tmp_path):
    a, b = make_product(vendor_sku="NW-A"), make_product(vendor_sku="NW-B")
    store = ProductStore(tmp_path)
    store.upsert([a, b], {a.product_id: "ka"}, {a.product_id: "oa"})

    def keys():
        table = store.vendor_rows("northwind_apparel", ["product_id", "row_key", "offer_key"])
        return {pid: (row, offer) for pid, row, offer in zip(*(table.column(i).to_pylist() for i in range(3)), strict=True)}

    assert keys() == {a.product_id: ("ka", "oa"), b.product_id: (None, None)}
    store.upsert([], {b.product_id: "kb"}, {b.product_id: "ob"})  # confirmed from its row: both recorded
    assert keys()[b.product_id] == ("kb", "ob")
    store.upsert([a.model_copy(update={"price": 1.0})])  # written any other way: neither key any more
    assert keys()[a.product_id] == (None, None)


def test_embedding_lookup_and_hashes_read_later_parts_first(tmp_path):
    store = EmbeddingStore(tmp_path)
    v = unit_vectors(3, 4)
    store.add("m", ["a", "b"], v[:2])
    store.add("m", ["b"], v[2:3])  # re-embedded: the later part wins
    assert store.hashes("m") == {"a", "b"} and store.hashes("other") == set()
    found = store.lookup("m", {"b", "zz"})
    assert list(found) == ["b"] and (found["b"] == v[2]).all()
    assert set(store.load("m")) == {"a", "b"} and store.lookup("m", []) == {}
