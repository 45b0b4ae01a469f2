# pgmoat — build, test, demo, bench.
#   make            build build/pgmoat (installs missing Debian packages when root)
#   make test       build and run every test (SANITIZE=1: ASan+UBSan build); installs the test
#                   OpenID provider's npm packages (tests/oidc/setup.sh) first
#   make demo       build and run the one-command demo
#   make bench      pgbench direct vs pgbouncer vs pgmoat

CC      ?= cc
PG_INC  := /usr/include/postgresql
PGSRV   := $(PG_INC)/15/server
CFLAGS_BASE := -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
	-Wpointer-arith -Wformat=2 -Wno-format-truncation -Wstrict-prototypes -g -D_GNU_SOURCE -Isrc -I$(PG_INC)
LIBS    := -lpg_query -lssl -lcrypto -lyaml -lsqlite3 -lmicrohttpd -ljansson -lcurl -lpcre2-8 -lpq -lpthread -lm

ifeq ($(SANITIZE),1)
BUILD   := build/san
CFLAGS  := $(CFLAGS_BASE) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all -DGW_DEBUG
LDFLAGS := -fsanitize=address,undefined
else
BUILD   := build
CFLAGS  := $(CFLAGS_BASE) -O2 $(EXTRA_CFLAGS)
LDFLAGS :=
endif

SRCS      := $(filter-out %_test.c,$(wildcard src/*/*.c)) src/main.c
EMBED     := src/demo/shop.sql
OBJS      := $(SRCS:%.c=$(BUILD)/obj/%.o) $(EMBED:%=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/src/main.o,$(OBJS))
TEST_SRCS := $(wildcard src/*/*_test.c) tests/unit/run.c
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/obj/%.o)
LIBPQ_TESTS := $(patsubst tests/clients/%.c,$(BUILD)/%,$(wildcard tests/clients/*.c))

.PHONY: all deps test demo bench clean check-format
all: deps $(BUILD)/pgmoat

deps:
	@sh scripts/deps.sh

$(BUILD)/pgmoat: $(OBJS)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/unit_tests: $(TEST_OBJS) $(LIB_OBJS)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/audit_bench: bench/audit_bench.c $(LIB_OBJS)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/detect_bench: bench/detect_bench.c $(LIB_OBJS)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%: tests/clients/%.c
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpq

# Data files linked into the binary (symbols _binary_src_demo_shop_sql_start/_end).
$(BUILD)/obj/%.sql.o: %.sql
	@mkdir -p $(dir $@)
	@echo "  EMBED $<"
	@ld -r -b binary -z noexecstack -o $@ $<

# Only the classifier sees PostgreSQL's server headers (its node structs).
$(BUILD)/obj/src/policy/sqlparse.o: CFLAGS += -I$(PGSRV) -Wno-shadow -Wno-missing-field-initializers

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

test: all $(BUILD)/unit_tests $(LIBPQ_TESTS)
	@sh tests/oidc/setup.sh
	@PGMOAT_BUILD=$(BUILD) /usr/bin/python3 tests/run.py $(TESTS)

demo: all
	$(BUILD)/pgmoat demo

bench: all $(BUILD)/audit_bench $(BUILD)/detect_bench $(BUILD)/unit_tests
	@PGMOAT_BUILD=$(BUILD) /usr/bin/python3 bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(TEST_OBJS:.o=.d)
