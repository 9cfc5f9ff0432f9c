# One image for web, worker and beat: `newsflash web|worker|beat`.
# The push stand-ins (standin/) and the benchmark (bench/) are development tools: they are
# neither copied nor in the build context (.dockerignore), so the wheel installed here has
# only cli, config, core, service and workers, and `newsflash push-standin` / `bench` say so.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 newsflash
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY config ./config
COPY core ./core
COPY service ./service
COPY workers ./workers
RUN pip install ".[ops]" && mkdir -p /app/var && chown newsflash /app/var
USER newsflash
EXPOSE 8000
CMD ["newsflash", "web", "--host", "0.0.0.0"]
