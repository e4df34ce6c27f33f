"""WSGI entry point for gunicorn: ``serving.wsgi:app`` (settings from LOOKSYNC_* variables)."""

from gunicorn.errors import AppImportError

from embeddings import EmbeddingsError
from looksync.settings import SettingsError, get_settings
from serving.app import create_app
from serving.logs import configure_logging

try:
    configure_logging(get_settings().log_level)
    app = create_app(get_settings())
except (SettingsError, EmbeddingsError) as exc:
    # a configuration problem, not a bug: gunicorn prints this one line and stops ("App failed to load")
    # instead of a worker traceback
    raise AppImportError(str(exc)) from None
