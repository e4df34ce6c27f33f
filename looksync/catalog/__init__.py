"""The catalog: what a product is and where it is kept.

Schema and taxonomy, the quarantine record, vendor mappings and feed readers (``vendors/``), the product
and embeddings stores, object storage (local or S3), the Redis attribute mirror and guarded image
fetching. The catalog knows no pipeline, no search and no Airflow.
"""
