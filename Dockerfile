# The Followthrough image: API, worker and one-shot commands (`followthrough migrate`, ...).
# Browser assets come from npm, pinned in web/package-lock.json, as `make web` does.
FROM node:20.18.0-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11.10-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflows workflows
COPY activities activities
COPY workers workers
COPY api api
COPY bench bench
COPY migrations migrations
COPY --from=web /web/node_modules/htmx.org/dist/htmx.min.js \
     /web/node_modules/chart.js/dist/chart.umd.min.js api/web/static/vendor/
RUN pip install -e . && useradd --system --home-dir /app followthrough \
    && mkdir /app/.data && chown followthrough /app/.data
USER followthrough
# Workers cache compiled workflow modules here (see workers/worker.py).
ENV DATA_DIR=/app/.data
EXPOSE 8000 9464
CMD ["followthrough", "--help"]
