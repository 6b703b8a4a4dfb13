# Blockwatch in a container: `docker build -t blockwatch .` then `docker compose up -d` (compose.yaml).
# The database and its .secret live in the /data volume; /healthz on LISTEN is the HEALTHCHECK.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# a user of its own, no shell, no login: the bot never needs root
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin blockwatch \
    && mkdir /data \
    && chown blockwatch:blockwatch /data

WORKDIR /app
COPY pyproject.toml README.md babel.cfg ./
COPY bot ./bot
COPY storage ./storage
COPY templates ./templates
COPY locales ./locales
# a non-editable install: templates/ and locales/ go to <prefix>/share/blockwatch (pyproject's data-files);
# zoneinfo's time zones come from the tzdata package, since slim images have no /usr/share/zoneinfo
RUN pip install --no-cache-dir . \
    && blockwatch --version

USER 10001:10001
ENV DATABASE_PATH=/data/blockwatch.db \
    LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080

# /healthz answers 503 when no poll has succeeded for three poll intervals: give a fresh start that long
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('LISTEN', ':8080').rpartition(':')[2]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

# exec form: SIGTERM from `docker stop` reaches the bot itself (it stops cleanly and exits 0)
ENTRYPOINT ["blockwatch"]
CMD ["run"]
