# loyalty: PGXS build.  See docs/installation.md.
#
# Install and upgrade scripts are plain files: loyalty--1.0.sql is the
# released 1.0 and is never edited; every later change goes into the
# upgrade script of the version under construction (docs/development.md).

EXTENSION   = loyalty
DATA        = $(sort $(wildcard loyalty--*.sql))

MODULE_big  = loyalty
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
SHLIB_LINK  = -ljansson -lcrypto
PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wmissing-prototypes -Werror=implicit-function-declaration

# pg_regress: every sql/NAME.sql, in name order, against one database that
# already has the extension.
REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=loyalty

# isolation specs live in test/isolation/specs.
ISOLATION      = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=loyalty

# TAP tests (PostgreSQL::Test::Cluster) live in test/t.
TAP_TESTS   = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = results output_iso tmp_check regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# One target per suite, so that tools/test.sh can report each one.
.PHONY: installcheck-regress installcheck-isolation installcheck-tap installcheck-pgtap

installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) --dbname=isolation_regression $(ISOLATION)

installcheck-tap:
	$(prove_installcheck)

# pgTAP: every test/pgtap/*.sql through pg_prove, in a database that has
# pgtap and loyalty (tools/test.sh creates it; PGTAP_DB names it).
PGTAP_DB ?= loyalty_pgtap
installcheck-pgtap:
	pg_prove --failures -d $(PGTAP_DB) $(sort $(wildcard test/pgtap/*.sql))

# jansson's json_object() would bind to the server's SQL function of the same
# name at run time (see src/policy_parse.c): refuse to build a module that
# imports it.
all: check-symbols
.PHONY: check-symbols
check-symbols: $(shlib)
	@if nm -D --undefined-only $(shlib) | grep -qw 'json_object'; then \
		echo "loyalty.so imports json_object, which collides with the server's" >&2; exit 1; fi
