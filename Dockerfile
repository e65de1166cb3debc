# syntax=docker/dockerfile:1
# uhi as a SageMaker Processing container (also fine for cron/Kubernetes: override the command).
# Build:  docker build -t uhi:0.1.0 .
# Local:  docker run --rm -v $PWD/ml:/opt/ml uhi:0.1.0            (one host)
#         docker run --rm -v $PWD/ml:/opt/ml uhi:0.1.0 --merge    (merge job)
# rasterio, pyproj, shapely and pyogrio wheels bundle GDAL, PROJ and GEOS, so the slim image
# needs no system GIS packages.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/uhi
COPY pyproject.toml README.md LICENSE ./
COPY uhi ./uhi
# a non-editable install: the runtime image carries the package, not the source tree
RUN /opt/uhi/bin/pip install ".[sagemaker,dask]"

FROM python:3.11-slim
ENV PATH=/opt/uhi/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR \
    GDAL_HTTP_MAX_RETRY=3 \
    GDAL_HTTP_RETRY_DELAY=2
COPY --from=build /opt/uhi /opt/uhi
# fail the build, not the job, when the install is broken
RUN uhi --version && python -c "import rasterio, pyproj, shapely, distributed, boto3"
WORKDIR /opt/ml/processing
# SageMaker Processing passes ContainerArguments after the entrypoint: e.g. ["--merge"]
# or ["--set", "search.max_cloud=30"]. JSON-line logs suit CloudWatch.
ENTRYPOINT ["uhi", "--log-json", "processing"]
