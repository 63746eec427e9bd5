# syntax=docker/dockerfile:1
# One image for web, worker and beat, all through scripts/entrypoint.sh (tests/deploy runs the same commands):
#   docker run IMAGE                 -> web: gunicorn -c config/gunicorn.conf.py on :8000
#   docker run IMAGE worker          -> Celery worker on the queues default,gateway,webhooks,events
#   docker run IMAGE beat            -> Celery beat (exactly one)
#   docker run IMAGE migrate         -> migrations, once per release, before the others start
#   docker run IMAGE health ROLE     -> exit 0 when web, worker or beat is healthy
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DEBUG=false
RUN groupadd --system app && useradd --system --gid app --home /app app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays root-owned (read-only to the app user); .dockerignore keeps .env, .git, .venv and caches out.
COPY . .
# Hashed, gzipped static files for whitenoise; settings need a key, so the step makes a throwaway one.
RUN /app/scripts/entrypoint.sh collectstatic
USER app
EXPOSE 8000
# The default command's check; compose (and any orchestrator) sets `health worker` / `health beat` for the others.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s CMD ["/app/scripts/entrypoint.sh", "health", "web"]
ENTRYPOINT ["/app/scripts/entrypoint.sh"]
CMD ["web"]
