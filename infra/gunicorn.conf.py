"""gunicorn settings for the LookSync service (``looksync serve`` uses this file).

Each worker builds the app (and so loads the CLIP model and opens the index) once, at start; requests
never load models. Workers x threads is tuned for CPU inference: one worker per container by default
(each worker holds a model, and Prometheus scrapes see the whole process), a few threads in it (torch
releases the GIL during inference). The app writes one structured JSON log line per request (with its
request id), so gunicorn's own access log is off. Override with GUNICORN_* variables.
"""

import os

bind = f"{os.environ.get('LOOKSYNC_HOST', '127.0.0.1')}:{os.environ.get('LOOKSYNC_PORT', '8000')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", str(max(2, min(8, (os.cpu_count() or 2) * 2)))))
# gthread, answering gunicorn's own refusals (below) as JSON like the app does: serving/gunicorn_worker.py
worker_class = "serving.gunicorn_worker.JsonErrorThreadWorker"
# What gunicorn refuses before Flask sees a request (JSON errors through the worker above):
# a request line (method, path, query, version) over 4094 bytes -> 414 uri_too_long; more than 100 header
# fields -> 431; a header field over 8190 bytes -> 431; a malformed request line, header, chunk or
# Content-Length or Transfer-Encoding -> 400. The body caps are the app's
# (LOOKSYNC_MAX_UPLOAD_BYTES, also while reading a chunked body: 413).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
preload_app = False  # the model is loaded in each worker after the fork, never shared across a fork
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))  # first request of a worker may wait for the model
graceful_timeout = 20
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
wsgi_app = "serving.wsgi:app"


def worker_exit(server, worker):
    """Stop the worker's background work (the text-vocabulary build) while the worker can still run it;
    the engine's atexit hook does the same a little later, for any process that built the app."""
    from serving import context

    app = getattr(worker, "wsgi", None)  # absent when the app failed to load
    engine = app.extensions.get(context.ENGINE) if app is not None else None
    if engine is not None:
        engine.close()
