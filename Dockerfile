FROM python:3.11-slim
WORKDIR /app
# A CUDA build of torch for GPU hosts; pyproject pins the version.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
COPY pyproject.toml README.md ./
COPY llmweb llmweb
COPY jobs jobs
RUN pip install --no-cache-dir .
COPY . .
