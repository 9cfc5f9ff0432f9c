# One image for web, worker and beat: `newsflash web|worker|beat`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 newsflash
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY core ./core
COPY service ./service
COPY workers ./workers
COPY standin ./standin
COPY bench ./bench
RUN pip install ".[ops]" && mkdir -p /app/var && chown newsflash /app/var
USER newsflash
EXPOSE 8000
CMD ["newsflash", "web", "--host", "0.0.0.0"]
