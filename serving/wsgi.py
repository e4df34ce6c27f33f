"""WSGI entry point for gunicorn: ``serving.wsgi:app`` (settings from LOOKSYNC_* variables)."""

from looksync.settings import get_settings
from serving.app import create_app
from serving.logs import configure_logging

configure_logging(get_settings().log_level)
app = create_app(get_settings())
