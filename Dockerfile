# One image for every role: configsync dev|worker|... (see docs/operations.md).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/configsync ./cmd/configsync

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/configsync /configsync
USER nonroot:nonroot
ENTRYPOINT ["/configsync"]
