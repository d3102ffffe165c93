# mailnest's container image: SMTP 1025, web UI and API 8025, IMAP 1143, POP3 1110, mail kept in the /data volume.
#
#   docker build -t mailnest .
#   docker run --rm -p 127.0.0.1:1025:1025 -p 127.0.0.1:8025:8025 -v mailnest-data:/data mailnest
#
# Every `mailnest serve` option is a MAILNEST_* variable (`docker run -e MAILNEST_MAX_MESSAGES=500 ...`), and
# arguments after the image name replace `serve` (`docker run mailnest serve --print`, `... mailnest --help`).
# BASE is any Debian-like image with python3 (3.11 or newer) and its venv module; the tests build on a
# debootstrapped Debian bookworm.
ARG BASE=docker.io/library/python:3.12-slim

FROM ${BASE} AS deps
# EXTRAS are the package's optional parts to include, comma-separated: "postgres" (the team store, --db
# postgresql://...) by default; add "mcp" for /mcp and `mailnest mcp`, "thumbnails" for image previews.
ARG EXTRAS=postgres
# mailnest's dependencies and build tools, read from pyproject.toml, in a venv of their own: this layer is
# rebuilt only when pyproject.toml or EXTRAS change.
COPY pyproject.toml /src/
RUN python3 -m venv /opt/mailnest \
    && python3 -c 'import os, sys, tomllib; toml = tomllib.load(open("/src/pyproject.toml", "rb")); \
project, optional = toml["project"], toml["project"]["optional-dependencies"]; \
extras = [name.strip() for name in os.environ["EXTRAS"].split(",") if name.strip()]; \
unknown = [name for name in extras if name not in optional]; \
unknown and sys.exit(f"EXTRAS: no extra named {unknown}; the extras are {sorted(optional)}"); \
print(*project["dependencies"], *(dep for name in extras for dep in optional[name]), \
*toml["build-system"]["requires"], sep="\n")' > /src/requirements.txt \
    && /opt/mailnest/bin/pip install --no-cache-dir --disable-pip-version-check -r /src/requirements.txt

FROM deps AS app
# mailnest itself, from this build context, in a directory of its own (the venv finds it through a .pth file):
# a change to the code rebuilds only this stage and the image's last, small layer, never the dependencies.
COPY README.md LICENSE /src/
COPY src /src/src
RUN /opt/mailnest/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
    --target /opt/mailnest-app /src

FROM deps AS runtime
# The dependencies' venv as the image has it: without pip and the build tools.
RUN /opt/mailnest/bin/pip uninstall --yes --disable-pip-version-check pip setuptools \
    && /opt/mailnest/bin/python3 -c 'import site; \
open(site.getsitepackages()[0] + "/mailnest-app.pth", "w").write("/opt/mailnest-app\n")'

FROM ${BASE}
# A fixed numeric user, so that Kubernetes' runAsNonRoot can check it and a bind-mounted /data can be chowned to
# it (chown 10001 ./data) from the host. /data is also writable by group 0, for platforms that run images
# under an arbitrary uid in group root (OpenShift).
RUN groupadd --system --gid 10001 mailnest \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin mailnest \
    && mkdir /data && chown 10001:0 /data && chmod 0770 /data

# Inside a container every listener binds 0.0.0.0: the loopback address of a container is reachable from nowhere
# else, so this is the one place mailnest must listen on every address. What reaches it is decided by the ports
# you publish: publish them on 127.0.0.1 (as above and in compose.yaml) unless other machines should read the
# mail, and then set MAILNEST_HTTP_AUTH_FILE and MAILNEST_AUTH_FILE; mailnest logs a warning for each listener
# that lets anyone in, and those warnings are expected here. The web UI answers to loopback names, to
# --hostname (MAILNEST_HOSTNAME, default "mailnest": the service name in compose.yaml) and to the names in
# MAILNEST_ALLOWED_HOST (comma-separated); any other Host gets 400 (a defence against DNS rebinding).
ENV PATH=/opt/mailnest-app/bin:/opt/mailnest/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAILNEST_SMTP=0.0.0.0:1025 \
    MAILNEST_HTTP=0.0.0.0:8025 \
    MAILNEST_IMAP=0.0.0.0:1143 \
    MAILNEST_POP3=0.0.0.0:1110 \
    MAILNEST_DB=/data/mailnest.db

VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 1025 8025 1143 1110

# `mailnest readyz` asks this container's /readyz (open without HTTP auth and without the Host check): 0 while
# the store takes mail, 1 otherwise. Podman keeps a HEALTHCHECK only in the docker image format
# (`podman build --format docker`).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["mailnest", "readyz"]

# mailnest is PID 1 (exec form, no shell) and handles SIGTERM itself: it closes the listeners, finishes the
# messages in flight and exits 0 within a few seconds, well inside `docker stop`'s 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailnest"]
CMD ["serve"]

# Last, so that everything above stays cached: the dependencies (a layer that changes only with them), then
# mailnest (a small one).
COPY --from=runtime /opt/mailnest /opt/mailnest
COPY --from=app /opt/mailnest-app /opt/mailnest-app
