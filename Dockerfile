# Builds the pdp binary and ships it alone in a distroless image that runs
# as a non-root user. The shipped policy bundle is embedded in the binary
# (package policies), so the image needs no bundle files.
#
#   docker build -t pdp .
#   docker run --rm pdp version
#
# The default configuration listens on 127.0.0.1 only: Envoy or NGINX in
# the same pod (network namespace) reaches it, nothing else does. To listen
# on other addresses, mount a configuration file with TLS for each listener
# and pass --config.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off gives a static binary for the static distroless base.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/pdp ./cmd/pdp \
    && mkdir -p /out/data/audit

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pdp /usr/local/bin/pdp
# The audit log is written below the working directory (audit/ by
# default); mount a volume here to keep it across restarts.
COPY --from=build --chown=65532:65532 /out/data /var/lib/pdp
WORKDIR /var/lib/pdp
USER 65532:65532
EXPOSE 8181 9191
ENTRYPOINT ["/usr/local/bin/pdp"]
CMD ["serve"]
