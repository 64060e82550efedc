#!/bin/sh
# Assemble an extension script from SQL sources (called by the Makefile).
#
#   tools/sqlgen.sh install VERSION SOURCE...      > loyalty--VERSION.sql
#   tools/sqlgen.sh update FROM TO FRAGMENT...      > loyalty--FROM--TO.sql
#
# The sources are concatenated in the order given (the Makefile sorts them
# by name).  In an update fragment, a line "\ir PATH" is replaced by the
# file PATH, relative to src/sql, so that a concept that is wholly new in a
# version is written once, in its source, and included in the update.
# The output starts with a header naming its sources and with the \echo
# line that stops psql from running the script by hand.
set -eu
mode=$1; shift
srcdir=$(dirname "$0")/../src/sql

emit() {  # FILE: the file, with "\ir PATH" lines expanded
    awk -v dir="$srcdir" '
        /^\\ir[ \t]/ { f = dir "/" $2
                       while ((getline line < f) > 0) print line
                       close(f); next }
        { print }' "$1"
}

case $mode in
install)
    version=$1; shift
    echo "-- loyalty $version install script, generated from src/sql/*.sql by tools/sqlgen.sh."
    echo "-- Do not edit: edit the sources (docs/development.md)."
    echo
    printf '%s\n' '\echo Use "CREATE EXTENSION loyalty" to load this file. \quit'
    for f in "$@"; do echo; echo "-- ---- $(basename "$f")"; emit "$f"; done ;;
update)
    from=$1 to=$2; shift 2
    echo "-- loyalty $from -> $to, generated from src/sql/update/$from--$to/*.sql by tools/sqlgen.sh."
    echo "-- Do not edit: edit the fragments (docs/development.md)."
    echo
    printf '%s\n' "\\echo Use \"ALTER EXTENSION loyalty UPDATE TO '$to'\" to load this file. \\quit"
    for f in "$@"; do echo; echo "-- ---- $(basename "$f")"; emit "$f"; done ;;
*)
    echo "usage: $0 install VERSION SOURCE... | update FROM TO FRAGMENT..." >&2; exit 2 ;;
esac
