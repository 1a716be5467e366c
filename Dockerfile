# The gateway image: runtime requirements only, non-root, gunicorn with gevent workers on 8010.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY gateway/ gateway/
COPY legacy_api/ legacy_api/
COPY v1/ v1/
COPY bridge/ bridge/
COPY worker/ worker/
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --uid 10001 --no-create-home gateway \
    && mkdir -p /data && chown gateway /data
USER gateway
# Attachments live on a volume the worker can share; /app is read-only for the gateway user.
ENV ATTACHMENTS_DIR=/data/attachments
VOLUME ["/data"]

EXPOSE 8010
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v1/health?strict=true' % os.environ.get('GATEWAY_PORT', '8010'), timeout=4)"

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
