# The image of every leadloop service; build arguments say which one:
#   SERVICE  its folder under services/ (ingest, assignment, sla-monitor, metrics, handoff,
#            notifier)
#   PACKAGE  its Python package, the folder's name with _ for - (leadloop_sla_monitor)
#   PORT     its HTTP port, the default in its settings.py (18081 to 18086)
# docker-compose.yml passes them for each service. By hand:
#   docker build --build-arg SERVICE=sla-monitor --build-arg PACKAGE=leadloop_sla_monitor \
#     --build-arg PORT=18083 -t leadloop-sla-monitor .
# It lives at the repository root, not under deploy/, because the root is the build context
# (the image needs constraints.txt, shared/, services/ and deploy/postgres/migrations/) and
# .dockerignore beside it is that context's; `docker build .` finds it without -f.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/leadloop/venv \
    PATH=/opt/leadloop/venv/bin:$PATH

RUN groupadd --system --gid 10001 leadloop \
 && useradd --system --uid 10001 --gid leadloop --create-home --home-dir /var/lib/leadloop \
      --shell /usr/sbin/nologin leadloop \
 && python -m venv /opt/leadloop/venv

WORKDIR /opt/leadloop
COPY constraints.txt ./
COPY shared/ ./shared/

# Declared after the layers above, so the six images share them: every RUN after an ARG
# sees its value and is rebuilt when it changes. Missing arguments stop the build here,
# not at the first start of a container.
ARG SERVICE
ARG PACKAGE
ARG PORT
RUN : "${SERVICE:?build with --build-arg SERVICE=<folder under services/>}" \
      "${PACKAGE:?build with --build-arg PACKAGE=leadloop_<package>}" \
      "${PORT:?build with --build-arg PORT=<HTTP port>}"

COPY services/${SERVICE}/ ./services/${SERVICE}/
RUN pip install --no-cache-dir -c constraints.txt ./shared ./services/${SERVICE}
# `leadloop migrate` (docker-compose's one-shot init runs it from the ingest image) finds
# the migrations by walking up from the installed package to deploy/postgres/migrations,
# so they live under /opt/leadloop, beside the virtualenv, as in a checkout.
COPY deploy/postgres/migrations/ ./deploy/postgres/migrations/

# In a container the service listens on all interfaces (the settings default to loopback,
# right for a developer machine); faust's scratch data goes to the non-root user's home,
# not under the root-owned code. LEADLOOP_SERVICE_PACKAGE is for CMD below; the settings
# read only their own fields, so they ignore it.
ENV LEADLOOP_HTTP__HOST=0.0.0.0 \
    LEADLOOP_HTTP__PORT=${PORT} \
    LEADLOOP_DATA_DIR=/var/lib/leadloop/data \
    LEADLOOP_SERVICE_PACKAGE=${PACKAGE}

USER leadloop
EXPOSE ${PORT}

# slim has no curl: probe /healthz with the standard library (a refused connection or a
# non-2xx status raises, so the exit code is non-zero).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['LEADLOOP_HTTP__PORT'] + '/healthz', timeout=3)"]

# Docker does not substitute build arguments into CMD, so the package comes from the
# environment through a shell; `exec` makes python PID 1, as the exec form would, so
# `docker stop`'s SIGTERM reaches the service.
CMD ["sh", "-c", "exec python -m \"$LEADLOOP_SERVICE_PACKAGE\""]
