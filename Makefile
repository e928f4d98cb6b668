# pgsluice — build, run and test.
#   make            build build/pgsluice
#   make run        install what is missing, build, start a throwaway
#                   PostgreSQL 15 and pgsluice in front of it
#   make check      install what is missing, build with ASan/UBSan, run the
#                   unit and integration tests; ends with "N passed, M failed"
#   make SANITIZE=thread     ThreadSanitizer build in build/tsan
#   make SANITIZE=address,undefined   ASan/UBSan build in build/asan

CC ?= cc
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD ?= build
OPT ?= -O2
else ifeq ($(SANITIZE),thread)
BUILD ?= build/tsan
OPT ?= -O1
else
BUILD ?= build/asan
OPT ?= -O1
endif

PKGS := libevent libevent_pthreads libcrypto inih
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-g $(OPT) -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ifneq ($(SANITIZE)$(DEBUG),)
CFLAGS_BASE += -DPGS_ASSERTIONS
endif
ifneq ($(SANITIZE),)
CFLAGS_BASE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS_SAN := -fsanitize=$(SANITIZE)
endif
CFLAGS += $(CFLAGS_BASE)
LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

SRCS := $(shell find src -name '*.c' | sort)
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

# Debian 12 packages the build, the tests and `make run` need (promtool from
# prometheus and PgBouncer's exporter check /metrics and the admin console).
APT_PKGS := build-essential pkg-config libevent-dev libssl-dev libinih-dev libcmocka-dev \
	postgresql-15 postgresql-client-15 python3-psycopg python3-psycopg-pool python3-pytest \
	python3-pytest-timeout python3-sqlalchemy python3-psycopg2 pgbouncer prometheus prometheus-pgbouncer-exporter \
	valgrind strace clang-format

.PHONY: all deps node-deps run check unit integration clean tsan-check format format-check bench
all: $(BUILD)/pgsluice

$(BUILD)/pgsluice: $(OBJS)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-field-initializers -o $@ $< $(LIB_OBJS) $(LDFLAGS_SAN) $(LDLIBS) -lcmocka

-include $(OBJS:.o=.d)

# Installs only what is missing; skipped entirely when everything is there.
deps:
	@missing=""; for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# node-postgres for the tests that reproduce incidents of Node services:
# Node.js and npm from Debian when the machine has none, then the locked pg.
node-deps:
	@command -v npm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	@[ -f tests/node/node_modules/pg/package.json ] || (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

# `make bench`: pgsluice against PgBouncer in the same run (bench/README.md);
# QUICK=1 for a run under 3 minutes.
bench: deps
	@$(MAKE) --no-print-directory SANITIZE= all
	@PGSLUICE_BIN=build/pgsluice bench/run

run: deps
	@$(MAKE) --no-print-directory all
	@tools/run-local $(BUILD)/pgsluice

unit: $(UNIT_BINS)

check: deps node-deps
	@$(MAKE) --no-print-directory SANITIZE=address,undefined all unit
	@tools/run-tests build/asan

tsan-check: deps node-deps
	@$(MAKE) --no-print-directory SANITIZE=thread all unit
	@tools/run-tests build/tsan

FORMATTED := $(shell find src tests/unit bench -name '*.[ch]' | sort)
format:
	clang-format -i $(FORMATTED)

# Names every file that differs from .clang-format's output and fails;
# tools/run-tests counts it as one test, so a formatting slip fails `make check`.
format-check:
	@bad=0; for f in $(FORMATTED); do \
		clang-format --dry-run -Werror "$$f" >/dev/null 2>&1 || { echo "format: $$f differs from .clang-format (run make format)"; bad=1; }; \
	done; [ $$bad = 0 ]

clean:
	rm -rf build
