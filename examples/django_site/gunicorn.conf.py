"""gunicorn for the example site, as a team would run Django in its ECS task."""

import os

bind = os.environ.get("EXAMPLE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("EXAMPLE_WORKERS", "2"))
# Threads let one worker serve a stream while answering other requests.
worker_class = "gthread"
threads = int(os.environ.get("EXAMPLE_THREADS", "8"))
# Longer than the gateway's idle timeout for upstream connections, so the gateway
# always retires an idle connection before gunicorn closes it.
keepalive = 5
accesslog = None
graceful_timeout = 10
# gunicorn 27's control socket sits at one path per user; several servers on one
# machine (as in the tests) would fight over it. Older gunicorns ignore this name.
control_socket_disable = True
