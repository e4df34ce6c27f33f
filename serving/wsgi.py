"""WSGI entry point for gunicorn: ``serving.wsgi:app`` (settings from LOOKSYNC_* variables)."""

from serving.app import create_app

app = create_app()
