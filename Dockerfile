# convcov hosted demo: the Streamlit app on port 8501, CPU torch by default.
#   docker build -t convcov .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 -t convcov:cuda .
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONVCOV_HOME=/data \
    CONVCOV_RAY_LOCAL=0 \
    MPLCONFIGDIR=/tmp/matplotlib \
    ADDRESS=0.0.0.0 \
    PORT=8501

RUN useradd --create-home --uid 10001 convcov \
    && mkdir -p /data \
    && chown convcov:convcov /data

WORKDIR /app

# torch and torchvision first, from the index that matches the build (CPU or CUDA).
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.2" "torchvision>=0.17"
COPY requirements.txt ./
# and Ray, for sweeps on a cluster: the compose file's ray-head and ray-worker run this image, and
# the app reaches them as a Ray client (ray://ray-head:10001)
RUN pip install -r requirements.txt "ray[client]>=2.9"

COPY --chown=convcov:convcov . .

USER 10001
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status != 200)"]

CMD ["./bin/serve"]
