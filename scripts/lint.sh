#!/usr/bin/env bash
# scripts/lint.sh runs golangci-lint with .golangci.yml (staticcheck, errcheck,
# gocritic, ineffassign, unused, govet; gofmt and goimports with the module's
# imports grouped last). It installs the pinned version with `go install` when
# it is missing or another version: the Go module proxy is all it needs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=v2.15.0
gobin="$(go env GOPATH)/bin"
lint="$gobin/golangci-lint"
if ! [ -x "$lint" ] || ! "$lint" version 2>/dev/null | grep -q "version ${version#v} "; then
	echo "lint.sh: installing golangci-lint $version"
	go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
"$lint" run ./...
