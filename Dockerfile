# One image for the API, the worker and migrations.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY engine engine
COPY services services
COPY worker worker
COPY migrations migrations
RUN pip install --no-cache-dir -c constraints.txt .
RUN useradd --create-home bplab && mkdir /mlartifacts && chown bplab /mlartifacts
USER bplab
EXPOSE 8000
CMD ["python", "-m", "services.api.serve", "--bind", "0.0.0.0:8000"]
