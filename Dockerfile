# SaferMap app image: runs against an external PostGIS given by DATABASE_URL.
# Migrations are a separate step before the app starts:
#   docker run --rm -e DATABASE_URL=... safermap safermap db migrate
#   docker run -p 8000:8000 -e DATABASE_URL=... -e SAFERMAP_SECRET_KEY=... safermap
# Run several containers (or raise WORKERS) behind a load balancer: the app keeps no state of
# its own. Keep pool size x workers x containers under PostgreSQL's max_connections.

FROM node:20-bookworm-slim AS vendor
WORKDIR /build
COPY package.json ./
RUN npm install --no-package-lock --no-audit --no-fund --loglevel=error
COPY Makefile ./
RUN apt-get update -qq && apt-get install -y -qq make && mkdir -p static && make vendor-copy

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WORKERS=2
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
CMD ["sh", "-c", "exec uvicorn app.main:create_app --factory --host 0.0.0.0 --port 8000 --workers ${WORKERS} --proxy-headers --forwarded-allow-ips='*'"]
