# Shared by tools/test.sh and tools/demo.sh: dependencies, a private
# install of the extension, and a throwaway PostgreSQL server.
#
# Nothing here writes outside the work directory except apt-get (as root).

PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BINDIR/pg_config
[ -x "$PG_CONFIG" ] || PG_CONFIG=/usr/bin/pg_config

# Debian packages the build, the tests and the demo need.
LOYALTY_PACKAGES="make gcc libc6-dev postgresql-server-dev-$PG_MAJOR libjansson-dev
    postgresql-$PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl
    libipc-run-perl postgresql-$PG_MAJOR-cron postgresql-$PG_MAJOR-pgaudit libssl-dev"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_packages: install what is missing (root), or say what is missing.
ensure_packages() {
    local missing="" p
    for p in $LOYALTY_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing="$missing $p"
    done
    # the Node.js example client needs node and npm (any source will do)
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages:$missing
Install them once as root (apt-get install$missing) or run this command as root."
    fi
    log "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || die "apt-get install failed"
}

# unprivileged_user: the OS user servers run as when we are root.
unprivileged_user() {
    if id postgres >/dev/null 2>&1; then echo postgres; else
        useradd --system --no-create-home loyalty >/dev/null 2>&1 || true
        echo loyalty
    fi
}

# build_and_stage SRC DEST: build the extension in SRC and make DEST a
# private PostgreSQL installation: a copy of the server's binaries (they
# find their share and lib directories relative to themselves), links to
# the system's share and lib files, and this extension installed on top.
build_and_stage() {
    local src=$1 dest=$2 sys_share sys_lib rel_share rel_lib
    sys_share=$($PG_CONFIG --sharedir)
    sys_lib=$($PG_CONFIG --pkglibdir)
    make -s -C "$src" PG_CONFIG="$PG_CONFIG" with_llvm=no >/dev/null \
        || die "build failed"
    mkdir -p "$dest$PG_BINDIR" "$dest$sys_share" "$dest$sys_lib"
    cp -p "$PG_BINDIR"/* "$dest$PG_BINDIR/"
    cp -rs "$sys_share"/. "$dest$sys_share/"
    cp -rs "$sys_lib"/. "$dest$sys_lib/"
    make -s -C "$src" PG_CONFIG="$PG_CONFIG" with_llvm=no DESTDIR="$dest" install >/dev/null \
        || die "install into $dest failed"
    STAGED_BINDIR="$dest$PG_BINDIR"
}

# start_server DATADIR SOCKDIR PORT [extra postgresql.conf lines]
# The loyalty key file is DATADIR.loyalty_key, beside the data directory and
# not in it (loyalty.key_file, docs/privacy.md); a database makes it with
# SELECT loyalty.key_create().
start_server() {
    local data=$1 sock=$2 port=$3
    shift 3
    mkdir -p "$sock"
    "$STAGED_BINDIR/initdb" -D "$data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$data.initdb.log" 2>&1 \
        || { cat "$data.initdb.log" >&2; die "initdb failed"; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$sock'"
        echo "port = $port"
        echo "fsync = on"
        echo "shared_preload_libraries = 'pg_cron,loyalty'"   # loyalty: the audit writer pool
        echo "cron.database_name = 'postgres'"
        echo "cron.use_background_workers = on"   # no TCP listener to connect to
        echo "max_worker_processes = 32"           # pg_cron, audit writer pools, replication
        echo "wal_level = logical"
        echo "max_connections = 100"
        echo "loyalty.key_file = '$data.loyalty_key'"   # outside the data directory
        for line in "$@"; do echo "$line"; done
    } >>"$data/postgresql.conf"
    "$STAGED_BINDIR/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null \
        || { cat "$data/server.log" >&2; die "server did not start"; }
}

stop_server() {
    "$STAGED_BINDIR/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}

# as_unprivileged_copy "VAR ..." SCRIPT [ARG ...]: as root, install what is
# missing, then run SCRIPT (a path inside the tree) as the unprivileged user
# in a private copy of the tree (servers refuse to run as root, and the
# copy keeps root's checkout clean), passing the named environment
# variables that are set, and exit with its status.  LOYALTY_KEEP=1 keeps
# the copy.  Does nothing when not root.
as_unprivileged_copy() {
    [ "$(id -u)" -eq 0 ] || return 0
    local vars=$1 script=$2 user work rc=0 v
    shift 2
    local envs=("LOYALTY_KEEP=${LOYALTY_KEEP:-}")
    for v in $vars; do
        if [ -n "${!v+x}" ]; then envs+=("$v=${!v}"); fi
    done
    ensure_packages
    user=$(unprivileged_user)
    work=$(mktemp -d /tmp/loyalty-copy.XXXXXX)
    cp -a "$here" "$work/src"
    make -s -C "$work/src" clean >/dev/null 2>&1 || true
    chown -R "$user" "$work"
    cd "$work"
    runuser -u "$user" -- env "${envs[@]}" "$work/src/$script" "$@" || rc=$?
    if [ -z "${LOYALTY_KEEP:-}" ]; then rm -rf "$work"; else log "kept $work (results under $work/src)"; fi
    exit $rc
}
