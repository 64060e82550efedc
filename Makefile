# loyalty: PGXS build.  See docs/installation.md.
#
# Scripts (docs/development.md, "Versions"):
# - released scripts (loyalty--1.0.sql, loyalty--1.0--1.1.sql) are committed
#   files that are never edited again (test/released-scripts.sha256);
# - the install script of the version under construction is generated from
#   the per-concept sources src/sql/NN_concept.sql, in name order;
# - its update script from the last release is generated from the
#   hand-written fragments src/sql/update/FROM--TO/NN_concept.sql.

EXTENSION   = loyalty
EXTVERSION  = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/loyalty.control)
LASTRELEASE = 1.1
DATA        = loyalty--1.0.sql loyalty--1.0--1.1.sql loyalty--1.0.control loyalty--1.1.control
DATA_built  = loyalty--$(EXTVERSION).sql loyalty--$(LASTRELEASE)--$(EXTVERSION).sql
SQL_SOURCES = $(sort $(wildcard $(srcdir)/src/sql/*.sql))
SQL_UPDATE  = $(sort $(wildcard $(srcdir)/src/sql/update/$(LASTRELEASE)--$(EXTVERSION)/*.sql))

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

EXTRA_CLEAN = $(DATA_built) results output_iso tmp_check regression.diffs regression.out .installcheck-before*

# make installcheck is ours (below), so that it can clean up after itself.
NO_INSTALLCHECK = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# One target per suite, so that tools/test.sh can report each one.
.PHONY: installcheck installcheck-regress installcheck-isolation installcheck-tap installcheck-pgtap

# make installcheck: the pg_regress, isolation and TAP suites against the
# running server, then every database and role the run made in it is
# dropped (tools/installcheck-cleanup.sh; docs/installation.md says what
# stays).  INSTALLCHECK_TAP=no skips the TAP suite (it runs its own
# throwaway servers and leaves nothing in yours).
INSTALLCHECK_TAP ?= yes
installcheck:
	@$(srcdir)/tools/installcheck-cleanup.sh snapshot .installcheck-before
	@rc=0; \
	$(MAKE) installcheck-regress || rc=1; \
	$(MAKE) installcheck-isolation || rc=1; \
	if [ "$(INSTALLCHECK_TAP)" = yes ]; then $(MAKE) installcheck-tap || rc=1; fi; \
	$(srcdir)/tools/installcheck-cleanup.sh cleanup .installcheck-before || rc=1; \
	exit $$rc

installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) --dbname=isolation_regression $(ISOLATION)

installcheck-tap:
	$(prove_installcheck)

# pgTAP: every test/pgtap/*.sql through pg_prove, in a database that has
# pgtap and loyalty (tools/test.sh creates it; PGTAP_DB names it).
PGTAP_DB ?= loyalty_pgtap
PGTAP_FILES ?= $(sort $(wildcard test/pgtap/*.sql))
installcheck-pgtap:
	pg_prove --failures -d $(PGTAP_DB) $(PGTAP_FILES)

# jansson's json_object() would bind to the server's SQL function of the same
# name at run time (see src/policy_parse.c): refuse to build a module that
# imports it.
all: check-symbols
.PHONY: check-symbols
check-symbols: $(shlib)
	@if nm -D --undefined-only $(shlib) | grep -qw 'json_object'; then \
		echo "loyalty.so imports json_object, which collides with the server's" >&2; exit 1; fi

# The generated scripts (tools/sqlgen.sh).  An update fragment may include a
# whole source with a line "\\ir NN_concept.sql", so it depends on both.
loyalty--$(EXTVERSION).sql: $(SQL_SOURCES) $(srcdir)/tools/sqlgen.sh $(srcdir)/loyalty.control
	$(srcdir)/tools/sqlgen.sh install $(EXTVERSION) $(SQL_SOURCES) > $@

loyalty--$(LASTRELEASE)--$(EXTVERSION).sql: $(SQL_UPDATE) $(SQL_SOURCES) $(srcdir)/tools/sqlgen.sh
	$(srcdir)/tools/sqlgen.sh update $(LASTRELEASE) $(EXTVERSION) $(SQL_UPDATE) > $@
