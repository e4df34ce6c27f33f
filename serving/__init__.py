"""The LookSync HTTP service: a Flask app factory, blueprints that translate HTTP, JSON errors."""

from serving.app import create_app

__all__ = ["create_app"]
