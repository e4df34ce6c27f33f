"""The catalog pipelines the DAGs call: ingest stages, attribute standardisation, near-duplicate
grouping, reindexing, the vendor-update queue and run reports. Plain functions over settings and
references; no Airflow here (the ``looksync.airflow`` wing adapts them to tasks)."""
