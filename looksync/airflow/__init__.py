"""Airflow glue, the only place in ``looksync`` that imports Airflow: connections read through the
providers' hooks (``connections``), pool setup (``pools``) and what DAG files need (``dag_support``)."""
