# A stand-in for the python:3.11-slim-bookworm base (PYTHON_IMAGE), built from Debian packages
# for machines that reach the package registries but no image registry. Same contract as the
# official image for the project's Dockerfile: `python`, `pip` and `venv` on PATH, pip allowed to
# install system-wide, CA certificates current.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# The base already holds the host's extra CA certificates in /usr/local/share/ca-certificates;
# installing ca-certificates adds them to the system bundle pip uses.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
 && update-ca-certificates \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
CMD ["python3"]
