#!/usr/bin/env bash
# scripts/test.sh is the project's test command: it makes sure PostgreSQL
# (with pgvector) and Redis are running (scripts/services.sh), checks gofmt,
# go vet and golangci-lint (scripts/lint.sh), then runs the Go tests with the race detector against those real
# services. It never skips what it cannot reach: it fails.
#
#   ./scripts/test.sh                      # everything
#   ./scripts/test.sh -run X ./store/...   # extra go test flags and packages
#
# OPENINTERN_TEST_DATABASE_URL and OPENINTERN_TEST_REDIS_URL are kept when set.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
	printf 'test.sh: FAIL: %s\n' "$*" >&2
	exit 1
}

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || fail "go not found on PATH"

./scripts/services.sh </dev/null || fail "scripts/services.sh could not provide PostgreSQL and Redis"

export OPENINTERN_TEST_DATABASE_URL="${OPENINTERN_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
export OPENINTERN_TEST_REDIS_URL="${OPENINTERN_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"

# The URLs may point elsewhere than the services above: check them as given.
pg_isready -q -t 10 -d "$OPENINTERN_TEST_DATABASE_URL" ||
	fail "PostgreSQL is not reachable at OPENINTERN_TEST_DATABASE_URL=$OPENINTERN_TEST_DATABASE_URL"
[ "$(redis-cli -u "$OPENINTERN_TEST_REDIS_URL" ping 2>&1)" = "PONG" ] ||
	fail "Redis is not reachable at OPENINTERN_TEST_REDIS_URL=$OPENINTERN_TEST_REDIS_URL"

echo "test.sh: gofmt -l"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	printf '%s\n' "$unformatted" >&2
	fail "gofmt: the files above are not formatted (run gofmt -w)"
fi

echo "test.sh: go vet ./..."
go vet ./... || fail "go vet"

echo "test.sh: golangci-lint (scripts/lint.sh)"
./scripts/lint.sh || fail "golangci-lint: fix the findings above (config: .golangci.yml)"

# Without a package argument the whole module is tested.
has_pkg=0
for arg in "$@"; do
	case "$arg" in
	./* | ../* | . | ... | *...* | github.com/*) has_pkg=1 ;;
	esac
done
if [ "$has_pkg" -eq 0 ]; then
	set -- "$@" ./...
fi

echo "test.sh: go test -race -count=1 -timeout 20m $*"
go test -race -count=1 -timeout 20m "$@" || fail "go test"
