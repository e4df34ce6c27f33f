"""LookSync domain package: schema, taxonomy, vendors, ingestion, index, search pipeline, cache, storage.

Both the Airflow DAGs and the Flask service import from here; neither holds domain logic itself.
Nothing heavy (torch, open_clip, pandas) is imported at module level anywhere in this package's
top-level modules, so DAG files that import it parse fast.
"""

__version__ = "0.1.0"
