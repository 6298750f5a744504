#!/usr/bin/env bash
# scripts/services.sh makes sure the services the tests talk to are installed
# and running on this machine, and installs or starts what is missing:
#
#   - PostgreSQL on 127.0.0.1:5432, user postgres with trust auth, with the
#     pgvector extension (built from Debian trixie's source package when the
#     installed PostgreSQL has no vector.control);
#     pg_stat_statements preloaded (see ensure_pg_stat_statements);
#   - Redis on 127.0.0.1:6379, keeping nothing on disk;
#   - Debian's chromium (and a small CJK font) for the web console's browser tests;
#   - Debian's prometheus, installed only: the metrics test starts its own
#     server on 127.0.0.1 (it is not started as a system service here).
#   - bubblewrap (bwrap), the sandbox the shell tool runs commands in.
#   - poppler-utils (pdftotext), which reads the text layer of ingested PDFs.
#
# It is idempotent and quick (well under 2 s) when everything is already there,
# runs non-interactively (CI=true, no stdin) and exits non-zero with a message
# when a service cannot be brought up. It needs root (or password-less sudo)
# only when it has something to install or start.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_MODE=a

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
# The PostgreSQL major version to install when none is; Debian bookworm's.
PG_DEFAULT_VERSION=15

log() { printf 'services: %s\n' "$*" >&2; }
die() {
	printf 'services: ERROR: %s\n' "$*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n -E "$@"
	else
		die "need root to run: $*"
	fi
}

# run_logged DESC CMD...: runs CMD with its output in a temporary log, printed
# only when it fails.
run_logged() {
	local desc=$1 out
	shift
	out=$(mktemp)
	if ! "$@" </dev/null >"$out" 2>&1; then
		tail -n 40 "$out" >&2 || true
		rm -f "$out"
		die "$desc failed"
	fi
	rm -f "$out"
}

APT_UPDATED=0
apt_update() {
	if [ "$APT_UPDATED" -eq 0 ]; then
		log "apt-get update"
		run_logged "apt-get update" as_root apt-get -o DPkg::Lock::Timeout=600 update
		APT_UPDATED=1
	fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
	local missing=() p
	for p in "$@"; do
		installed "$p" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	apt_update
	log "apt-get install ${missing[*]}"
	run_logged "apt-get install ${missing[*]}" as_root apt-get -o DPkg::Lock::Timeout=600 \
		install -y --no-install-recommends "${missing[@]}"
}

# wait_for DESC SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
	local desc=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 4; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.25
	done
	die "$desc did not come up within ${secs}s"
}

# ---------------------------------------------------------------- PostgreSQL

# pg_version prints the highest installed PostgreSQL server major version.
pg_version() {
	local d v best=""
	for d in /usr/lib/postgresql/*/bin/postgres; do
		[ -x "$d" ] || continue
		v=${d#/usr/lib/postgresql/}
		v=${v%%/*}
		if [ -z "$best" ] || [ "$v" -gt "$best" ]; then best=$v; fi
	done
	printf '%s' "$best"
}

pg_ready() {
	command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

pg_sql() {
	psql -X -q -w -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atc "$1"
}

ensure_postgres() {
	local ver
	ver=$(pg_version)
	if [ -z "$ver" ]; then
		apt_update
		if apt-cache show "postgresql-$PG_DEFAULT_VERSION" >/dev/null 2>&1; then
			apt_install "postgresql-$PG_DEFAULT_VERSION"
		else
			apt_install postgresql
		fi
		ver=$(pg_version)
		[ -n "$ver" ] || die "no PostgreSQL server found after installing it"
	fi
	command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql-common
	command -v pg_isready >/dev/null 2>&1 || apt_install "postgresql-client-$ver"
	pg_ready && return 0
	if ! pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
		log "creating cluster $ver/main"
		run_logged "pg_createcluster" as_root pg_createcluster "$ver" main -p "$PG_PORT"
	fi
	log "starting PostgreSQL $ver/main"
	run_logged "pg_ctlcluster start" as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
	wait_for "PostgreSQL on $PG_HOST:$PG_PORT" 30 pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

# ensure_trust makes 127.0.0.1 (and ::1) trusted when postgres cannot log in
# without a password.
ensure_trust() {
	local hba err
	command -v psql >/dev/null 2>&1 || apt_install postgresql-client
	if err=$(pg_sql 'SELECT 1' 2>&1); then
		return 0
	fi
	case "$err" in
	*password* | *authentication* | *pg_hba.conf*) ;;
	*) die "cannot connect to PostgreSQL on $PG_HOST:$PG_PORT as postgres: $err" ;;
	esac
	local ver
	ver=$(pg_version)
	hba=/etc/postgresql/$ver/main/pg_hba.conf
	[ -f "$hba" ] || die "password needed for postgres and $hba not found: $err"
	log "trusting 127.0.0.1 and ::1 in $hba"
	as_root cp "$hba" "$hba.bak-openintern"
	# Rules are matched top-down: the trust lines go first.
	as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
	run_logged "pg_ctlcluster reload" as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
	wait_for "PostgreSQL trust auth" 10 pg_sql 'SELECT 1'
}

# ensure_pg_stat_statements preloads pg_stat_statements, whose per-statement
# counts `openintern bench --database-url` reports. Loading it needs a
# restart: done at once when this script started PostgreSQL itself (nothing
# can be using it yet) or with OPENINTERN_PG_RESTART=1, else left to the
# next restart, so tests running against the server are not cut off.
ensure_pg_stat_statements() {
	local libs
	libs=$(pg_sql 'SHOW shared_preload_libraries') || die "cannot read shared_preload_libraries"
	case ",${libs// /}," in
	*,pg_stat_statements,*) return 0 ;;
	esac
	local pending
	pending=$(pg_sql "SELECT setting FROM pg_file_settings WHERE name = 'shared_preload_libraries' AND applied IS FALSE ORDER BY seqno DESC LIMIT 1") || pending=""
	if [ -z "$pending" ] || ! printf '%s' "$pending" | grep -q pg_stat_statements; then
		log "preloading pg_stat_statements (ALTER SYSTEM SET shared_preload_libraries)"
		pg_sql "ALTER SYSTEM SET shared_preload_libraries = '${libs:+$libs,}pg_stat_statements'" >/dev/null
	fi
	if [ "$PG_STARTED" -eq 1 ] || [ "${OPENINTERN_PG_RESTART:-0}" = 1 ]; then
		local ver
		ver=$(pg_version)
		log "restarting PostgreSQL $ver/main to load pg_stat_statements"
		run_logged "pg_ctlcluster restart" as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
		wait_for "PostgreSQL on $PG_HOST:$PG_PORT" 30 pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
	else
		log "pg_stat_statements loads at PostgreSQL's next restart (OPENINTERN_PG_RESTART=1 restarts it now)"
	fi
}

# debian_mirror prints the Debian mirror the machine's apt sources already use.
debian_mirror() {
	local uri
	uri=$(
		{
			cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }'
			cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
				awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
		} | grep -E '/debian/?$' | head -n 1
	) || true
	printf '%s' "${uri:-http://deb.debian.org/debian}"
}

ensure_pgvector() {
	local control=/usr/share/postgresql/$PG_VERSION/extension/vector.control
	if [ ! -f "$control" ]; then
		build_pgvector
	fi
	local err
	if ! err=$(pg_sql 'CREATE EXTENSION IF NOT EXISTS vector' 2>&1); then
		die "pgvector does not load in PostgreSQL $PG_VERSION: $err"
	fi
}

build_pgvector() {
	local pg_config=/usr/lib/postgresql/$PG_VERSION/bin/pg_config
	local src=/etc/apt/sources.list.d/openintern-trixie-src.sources
	log "pgvector missing for PostgreSQL $PG_VERSION: building it from Debian trixie's source package"
	if [ ! -f "$src" ]; then
		local mirror
		mirror=$(debian_mirror)
		log "adding deb-src for trixie main from $mirror ($src)"
		as_root tee "$src" >/dev/null <<EOF
# Added by openintern scripts/services.sh: source packages only, to build pgvector.
Types: deb-src
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		APT_UPDATED=0
	fi
	apt_install "postgresql-server-dev-$PG_VERSION" build-essential dpkg-dev
	apt_update
	local tmp
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	log "apt-get source --download-only pgvector"
	(cd "$tmp" && run_logged "apt-get source pgvector" apt-get source --download-only pgvector)
	local orig
	orig=$(ls "$tmp"/pgvector_*.orig.tar.* 2>/dev/null | head -n 1)
	[ -n "$orig" ] || die "no pgvector_*.orig.tar.* in the downloaded source package"
	mkdir "$tmp/src"
	tar -xf "$orig" -C "$tmp/src" --strip-components=1
	log "building $(basename "$orig")"
	# OPTFLAGS= drops upstream's -march=native so the library runs on any
	# x86-64 machine; with_llvm=no skips the JIT bitcode (needs clang).
	run_logged "make pgvector" make -C "$tmp/src" -j"$(nproc)" PG_CONFIG="$pg_config" OPTFLAGS= with_llvm=no
	run_logged "make install pgvector" as_root make -C "$tmp/src" install PG_CONFIG="$pg_config" OPTFLAGS= with_llvm=no
	rm -rf "$tmp"
	trap - EXIT
	[ -f "/usr/share/postgresql/$PG_VERSION/extension/vector.control" ] || die "pgvector installed no vector.control"
}

# --------------------------------------------------------------------- Redis

redis_ready() {
	command -v redis-cli >/dev/null 2>&1 &&
		[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

ensure_redis() {
	redis_ready && return 0
	apt_install redis-server redis-tools
	redis_ready && return 0
	log "starting redis-server on $REDIS_HOST:$REDIS_PORT"
	as_root mkdir -p /var/lib/redis /var/log/redis
	run_logged "redis-server" as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
		--save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	wait_for "Redis on $REDIS_HOST:$REDIS_PORT" 15 redis_ready
}

# ------------------------------------------------------------------- browser

# The web console's tests (web/) drive Debian's headless chromium; a small
# CJK font lets their screenshots show Chinese text instead of empty boxes.
ensure_browser() {
	if [ ! -x /usr/bin/chromium ]; then
		apt_install chromium
	fi
	[ -x /usr/bin/chromium ] || die "/usr/bin/chromium not found after installing chromium"
	apt_install fonts-wqy-microhei
}

# ---------------------------------------------------------------- prometheus

# cmd/openintern's metrics test runs /usr/bin/prometheus itself, on a free
# loopback port with a temporary config and data dir. Debian's package may
# start a system service when installed: it is stopped again, so that no
# Prometheus of ours listens on :9090 or keeps data.
ensure_prometheus() {
	[ -x /usr/bin/prometheus ] && return 0
	apt_install prometheus
	[ -x /usr/bin/prometheus ] || die "/usr/bin/prometheus not found after installing prometheus"
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
		as_root systemctl stop prometheus || true
		as_root systemctl disable prometheus >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/prometheus ]; then
		as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
	fi
}

# ---------------------------------------------------------------------- npm

# The MCP tests (tools/mcptools, cmd/openintern) run real MCP servers from npm,
# installed at pinned versions into one fixed folder (internal/testenv.NPMDir;
# OPENINTERN_NPM_DIR overrides it). Nothing is fetched when they are there, so
# this stays quick and works offline once installed.
NPM_DIR=${OPENINTERN_NPM_DIR:-/opt/openintern-npm}
NPM_PACKAGES=(
	@modelcontextprotocol/server-everything@2026.8.31
	@modelcontextprotocol/server-filesystem@2026.8.31
	@modelcontextprotocol/inspector@2.12.0
)

npm_installed() {
	local spec name version
	for spec in "${NPM_PACKAGES[@]}"; do
		name=${spec%@*}
		version=${spec##*@}
		[ -f "$NPM_DIR/node_modules/$name/package.json" ] || return 1
		grep -q "\"version\": \"$version\"" "$NPM_DIR/node_modules/$name/package.json" || return 1
	done
}

ensure_npm_packages() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		apt_install nodejs npm
	fi
	if npm_installed; then
		return
	fi
	log "installing ${NPM_PACKAGES[*]} into $NPM_DIR"
	as_root mkdir -p "$NPM_DIR"
	if [ ! -f "$NPM_DIR/package.json" ]; then
		printf '{"name":"openintern-test-npm","private":true}\n' | as_root tee "$NPM_DIR/package.json" >/dev/null
	fi
	run_logged "npm install" as_root npm install --prefix "$NPM_DIR" --no-audit --no-fund "${NPM_PACKAGES[@]}"
	npm_installed || die "npm packages not found in $NPM_DIR after installing them"
}

# ---------------------------------------------------------------------- main

PG_STARTED=0
if ! pg_ready; then
	log "PostgreSQL is not accepting connections on $PG_HOST:$PG_PORT"
	ensure_postgres
	PG_STARTED=1
fi
ensure_trust
# The running server's major version decides which pgvector it needs.
PG_VERSION=$(pg_sql 'SHOW server_version_num') || die "cannot query PostgreSQL's version"
PG_VERSION=$((PG_VERSION / 10000))
ensure_pgvector
ensure_pg_stat_statements
ensure_redis
ensure_browser
apt_install tmux # cmd/openintern tests drive a real terminal with it
ensure_prometheus
apt_install bubblewrap # the shell tool's sandbox; tools/ tests run commands in it
apt_install poppler-utils # pdftotext: ingest/ reads PDFs with it; its tests make real PDFs
ensure_npm_packages
log "ready: PostgreSQL $PG_VERSION with pgvector on $PG_HOST:$PG_PORT, Redis on $REDIS_HOST:$REDIS_PORT"
