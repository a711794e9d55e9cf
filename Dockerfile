# One image for every Syndicate part; docker-compose.yml picks the part with the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY feeds ./feeds
COPY worker ./worker
RUN pip install --no-cache-dir . && useradd --create-home syndicate \
    && mkdir -p /app/var /app/feeds && chown syndicate /app/var /app/feeds
USER syndicate
EXPOSE 8000 5555
ENTRYPOINT ["syndicate"]
CMD ["web"]
