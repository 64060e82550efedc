#!/bin/sh
# make installcheck's bookkeeping (docs/installation.md, "make installcheck"):
#
#   tools/installcheck-cleanup.sh snapshot FILE   record the cluster's roles and databases
#   tools/installcheck-cleanup.sh cleanup FILE    drop every database and role made since
#
# It connects like pg_regress (PGHOST, PGPORT, PGUSER; database postgres,
# or PGDATABASE) as a superuser.  Only objects that did not exist at the
# snapshot are dropped: databases first (WITH (FORCE)), then roles.  A role
# that cannot be dropped (it holds privileges in a database the run did
# not make) is named and the command fails.
set -eu
action=$1 file=$2
db=${PGDATABASE:-postgres}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
list() {
    q -c "SELECT 'database ' || datname FROM pg_database
          UNION ALL SELECT 'role ' || rolname FROM pg_roles ORDER BY 1"
}
case $action in
snapshot)
    list > "$file" ;;
cleanup)
    [ -f "$file" ] || { echo "installcheck-cleanup: no snapshot $file" >&2; exit 1; }
    list > "$file.after"
    rc=0
    for d in $(comm -13 "$file" "$file.after" | sed -n 's/^database //p'); do
        q -c "DROP DATABASE \"$d\" WITH (FORCE)" || rc=1
    done
    # members before the groups they belong to (newest first)
    for r in $(q -c "SELECT rolname FROM pg_roles ORDER BY oid DESC"); do
        grep -qx "role $r" "$file" && continue
        grep -qx "role $r" "$file.after" || continue
        q -c "DROP ROLE \"$r\"" 2>/dev/null || { echo "installcheck-cleanup: could not drop role $r" >&2; rc=1; }
    done
    list > "$file.after"
    if ! cmp -s "$file" "$file.after"; then
        echo "installcheck-cleanup: the cluster differs from before make installcheck:" >&2
        diff "$file" "$file.after" >&2 || true
        rc=1
    fi
    rm -f "$file" "$file.after"
    exit $rc ;;
*)
    echo "usage: $0 snapshot|cleanup FILE" >&2; exit 2 ;;
esac
