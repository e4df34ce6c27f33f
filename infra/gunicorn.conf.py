"""gunicorn settings for the LookSync service (``looksync serve`` uses this file).

Each worker builds the app (and so loads the CLIP model and opens the index) once, at start; requests
never load models. Workers x threads is tuned for CPU inference: few workers (each holds a model),
a few threads each (torch releases the GIL during inference). Override with GUNICORN_* variables.
"""

import os

bind = f"{os.environ.get('LOOKSYNC_HOST', '127.0.0.1')}:{os.environ.get('LOOKSYNC_PORT', '8000')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))  # first request of a worker may wait for the model
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
wsgi_app = "serving.wsgi:app"
