# pg_shield — PGXS build.
#
#   make && make install                 build and install (PG_CONFIG=... honoured)
#   make installcheck                    pg_regress, isolation and TAP tests against
#                                        temporary preloaded instances (non-root user)
#
# scripts/test.sh runs every suite, pgTAP and the docs check included, as root
# on a fresh Debian 12 machine.

EXTENSION   = pg_shield
MODULE_big  = pg_shield
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# Every version's install script and every upgrade script.  The version is
# stated once, in pg_shield.control; META.json and the scripts' names are
# checked against it (test/check-packaging.sh).
DATA        = $(sort $(notdir $(wildcard $(srcdir)/pg_shield--*.sql)))
PGFILEDESC  = "pg_shield - workload protection for PostgreSQL"

PG_CPPFLAGS = -I$(srcdir)/src

# pg_regress: one topic per file, against a temporary preloaded instance.
REGRESS      = setup accounting nesting boundaries utility privileges policies \
               fingerprints events modes admission policy_usage deadlines \
               breakers durations eviction parallel_cap shapes cleanup
REGRESS_OPTS = --temp-config=$(srcdir)/test/pg_shield.conf --temp-instance=./tmp_check_regress

# Isolation specs live in test/specs, expected output in test/expected.
ISOLATION      = concurrent_accounting cursor_reset policy_visibility \
                 admission_slots admission_queue admission_cancel breaker_probe \
                 deadline_lock admission_deadlock policy_ssi shape_sessions
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso \
                 --temp-config=$(srcdir)/test/pg_shield.conf --temp-instance=./tmp_check_iso

TAP_TESTS   = 1
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

EXTRA_CLEAN = tmp_check tmp_check_regress tmp_check_iso output_iso results regression.diffs regression.out log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
