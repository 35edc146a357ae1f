# SaferMap app image: runs against an external PostGIS given by DATABASE_URL.
# Migrations are a separate step before the app starts:
#   docker run --rm -e DATABASE_URL=... safermap safermap db migrate
#   docker run -p 8000:8000 -e DATABASE_URL=... -e SAFERMAP_SECRET_KEY=... safermap
# Run several containers behind a load balancer: what each process keeps in memory (callers, data
# versions, tiles) is kept exact by LISTEN/NOTIFY. Each worker sizes its pool from max_connections
# and the workers of its own container; with several containers, lower SAFERMAP_POOL_SIZE (or raise
# SAFERMAP_WORKERS to the total) so that all of them fit.

FROM node:20-bookworm-slim AS vendor
WORKDIR /build
COPY package.json ./
RUN npm install --no-package-lock --no-audit --no-fund --loglevel=error
COPY Makefile ./
RUN apt-get update -qq && apt-get install -y -qq make && mkdir -p static && make vendor-copy

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/safermap
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir .
COPY layers ./layers
COPY migrations ./migrations
COPY static ./static
COPY --from=vendor /build/static/vendor ./static/vendor
RUN useradd --system --home /srv/safermap safermap && mkdir -p var && chown safermap var
USER safermap
EXPOSE 8000
# The app refuses nothing here: DATABASE_URL must be set (without it the app would look for its
# embedded cluster, which does not exist in the image).
# WORKERS: one per core unless set; each worker sizes its pool to its share of max_connections
# (SAFERMAP_WORKERS). The asyncio loop, as `safermap serve` uses: uvloop let some of 200 clients wait.
CMD ["sh", "-c", "W=${WORKERS:-$(nproc)}; export SAFERMAP_WORKERS=$W; exec uvicorn app.main:create_app --factory --host 0.0.0.0 --port 8000 --workers $W --loop asyncio --proxy-headers --forwarded-allow-ips='*'"]
