# hostgate — one non-recursive Makefile; every output goes under build/.
#
#   make                 build/hostgate-fcgi and build/hostgate-sync
#   make test            unit tests, fuzz-corpus replay, integration tests
#   make test SANITIZE=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#                        the programs write every report to a file (common/sanitizer.c)
#                        and the runners fail on any
#   make fuzz            libFuzzer targets (clang) in build/fuzz/
#   make bench           benchmarks: bench/run (table in docs/performance.md),
#                        bench/tls (HTTPS egress), bench/cgi (CPU per CGI request)
#   make bench-engine    the engine alone: what a 10-condition choose costs
#   make install PREFIX=/usr/local DESTDIR=
#
# Sources are found by wildcard: a new module is a .c/.h pair in its directory, a
# new unit test is tests/unit/test_NAME.c, a new fuzz target tests/fuzz/fuzz_NAME.c.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   := build
PKGS    := json-c libcurl openssl fcgi
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wmissing-declarations -Wpointer-arith -Wcast-qual -Wwrite-strings \
        -Wformat=2 -Wvla -Wimplicit-fallthrough -fno-common -Werror
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
OPT    := -O2 -g
ifeq ($(SANITIZE),1)
OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
HARDEN := -fstack-protector-strong -fPIE
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS  = -std=c11 -D_DEFAULT_SOURCE -DHOSTGATE_VERSION='"$(VERSION)"' \
              $(OPT) $(WARN) $(HARDEN) -I. $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(OPT) -pie -Wl,-z,relro,-z,now $(LDFLAGS)
LIBS        = $(PKG_LIBS) -lm
# hiredis (common/redisconn.c, redisstore.c) only where Redis is used: the
# app, the unit tests, the fuzz builds (which compile every source)
REDIS_LIBS := $(shell pkg-config --libs hiredis 2>/dev/null || echo -lhiredis)

# Rebuild everything when the flags change (SANITIZE=1 after a plain build).
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW   := $(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)
$(shell mkdir -p $(BUILD); echo '$(FLAGS_NOW)' | cmp -s - $(FLAGS_STAMP) || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP))

# common/sanitizer.c is linked into the two programs directly, not through
# libcommon.a: nothing references its functions (the sanitizer runtimes look
# them up), so the linker would never take it from the archive
SAN_SRC    := common/sanitizer.c
COMMON_SRC := $(filter-out $(SAN_SRC),$(wildcard common/*.c))
POLICY_SRC := $(wildcard policy/*.c)
APP_SRC    := $(wildcard fcgi-app/*.c)
AGENT_SRC  := $(wildcard sync-agent/*.c)
MANAGE_SRC := $(wildcard manage/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON := $(BUILD)/libcommon.a
LIBPOLICY := $(BUILD)/libpolicy.a
APP       := $(BUILD)/hostgate-fcgi
AGENT     := $(BUILD)/hostgate-sync
MANAGE    := $(BUILD)/hostgate-manage
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
REPLAY_BINS := $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/tests/replay_%,$(FUZZ_SRC))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))

.PHONY: all test unit-test integration-test fuzz bench bench-engine install clean
# keep the test objects: they are intermediate to make, not to us
.SECONDARY:
all: $(APP) $(AGENT) $(MANAGE)

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
	@rm -f $@
	ar rcs $@ $^
$(LIBPOLICY): $(call obj,$(POLICY_SRC))
	@rm -f $@
	ar rcs $@ $^

# The app embeds its own libcurl: $(BUILD)/curl/libcurl.a, built by
# scripts/build-curl from Debian's curl source package of the installed
# libcurl4's version (Debian's patches applied; the headers are
# libcurl4-openssl-dev's, the same version), for HTTP and HTTPS over OpenSSL
# only. Debian's libcurl.so maps 33 libraries (GnuTLS through librtmp and
# libldap, Kerberos, libssh2): about 7 ms of a CGI start (docs/performance.md,
# issue 15). This one maps none beyond the app's own libssl and libcrypto,
# and curl_global_init runs only when a request goes to a backend (or a
# FastCGI worker starts): never for a 404, 401, 429, return-response or the
# health path. It is rebuilt when the installed libcurl4 changes version (an
# `apt upgrade` then `make` picks up Debian's fix) or the script's recipe
# changes; the source, and the library built from it, are kept per version
# in ~/.cache/hostgate (kept by `make clean`; a clean clone or another BUILD
# copies the library). Trusted CAs: /etc/ssl/certs, not the bundle (why:
# scripts/build-curl). hostgate-sync, -manage and -import keep the system
# libcurl.
# The app's other libraries are linked statically too (STATIC_LIBS=1, the
# default; STATIC_CRYPTO is its older name): OpenSSL, json-c, libfcgi and
# hiredis. Mapping and binding Debian's shared libssl and libcrypto costs
# every CGI start ~1.1 ms, a third of the issue-15 budget of 3 ms, and the
# other three ~0.25 ms more, 10-15% of what a relayed CGI request costs
# (docs/performance.md). Their fixes then need a rebuild, as libcurl's
# already do: `make` relinks the app when one of their -dev packages changes
# version, so after `apt upgrade` run `make && make install` once for all.
# STATIC_LIBS=0 links Debian's shared libraries instead (an upgrade then fixes
# them in place; the embedded libcurl still needs the rebuild).
STATIC_LIBS ?= $(if $(STATIC_CRYPTO),$(STATIC_CRYPTO),1)
CURL_DEB := $(shell dpkg-query -W -f='$${Version}' libcurl4 2>/dev/null)
CURL_DIR := $(BUILD)/curl
CURL_LIB := $(CURL_DIR)/libcurl.a
.PHONY: curl-rebuild
curl-rebuild: ;
ifneq ($(CURL_DEB),$(shell cat $(CURL_DIR)/version 2>/dev/null))
$(CURL_LIB): curl-rebuild
endif
$(CURL_LIB): scripts/build-curl
	scripts/build-curl $(CURL_DIR)
# --version names the Debian package the embedded libcurl was built from
$(call obj,fcgi-app/main.c): ALL_CFLAGS += -DHOSTGATE_CURL_DEB='"$(CURL_DEB)"'
$(call obj,fcgi-app/main.c): $(CURL_LIB)
APP_LIBS := $(CURL_LIB) $(REDIS_LIBS) $(shell pkg-config --libs json-c openssl fcgi 2>/dev/null) -lpthread -lm
APP_DEPS := $(CURL_LIB)
ifeq ($(STATIC_LIBS),1)
APP_LIBS := $(CURL_LIB) -Wl,-Bstatic -lhiredis -ljson-c -lfcgi -lssl -lcrypto -Wl,-Bdynamic -lpthread -lm
# relinked when a -dev package linked in changes version, as the embedded
# libcurl is rebuilt when libcurl4 does: apt upgrade, then make
STATIC_DEBS := $(shell dpkg-query -W -f='$${Package} $${Version}, ' libssl-dev libjson-c-dev \
		 libfcgi-dev libhiredis-dev 2>/dev/null | sed 's/, $$//')
STATIC_STAMP := $(BUILD)/static-libs.version
$(call obj,fcgi-app/main.c): ALL_CFLAGS += -DHOSTGATE_STATIC_DEBS='"$(STATIC_DEBS)"'
$(call obj,fcgi-app/main.c): $(STATIC_STAMP)
APP_DEPS += $(STATIC_STAMP)
.PHONY: static-relink
static-relink: ;
ifneq ($(STATIC_DEBS),$(shell cat $(STATIC_STAMP) 2>/dev/null))
$(STATIC_STAMP): static-relink
endif
$(STATIC_STAMP):
	@mkdir -p $(dir $@)
	echo '$(STATIC_DEBS)' > $@
endif
$(APP): $(call obj,$(APP_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON) $(APP_DEPS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call obj,$(APP_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON) $(APP_LIBS)
$(AGENT): $(call obj,$(AGENT_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call obj,$(AGENT_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON) $(LIBS)

# the management plane: SQLite is its own, not every binary's
$(MANAGE): $(call obj,$(MANAGE_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call obj,$(MANAGE_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON) $(LIBS) $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(LIBPOLICY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBPOLICY) $(LIBCOMMON) -lcmocka $(REDIS_LIBS) $(LIBS)

# the management plane's store, model and helpers, without its fronts
MANAGE_LIB_OBJ := $(call obj,$(filter-out manage/main.c,$(MANAGE_SRC)))
$(BUILD)/tests/test_manage_%: $(BUILD)/obj/tests/unit/test_manage_%.o $(MANAGE_LIB_OBJ) $(LIBPOLICY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(MANAGE_LIB_OBJ) $(LIBPOLICY) $(LIBCOMMON) -lcmocka $(LIBS) -lsqlite3

# the app's NPH framing is tested apart from the app
$(BUILD)/tests/test_nph: $(BUILD)/obj/tests/unit/test_nph.o $(BUILD)/obj/fcgi-app/nph.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcmocka $(LIBS)

# The fuzz targets, built with the ordinary compiler and a main() that replays
# their corpus, so `make test` runs every corpus file through them.
$(BUILD)/tests/replay_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/replay.o $(LIBPOLICY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# the relay's record reader and the NPH framing are fuzzed apart from the app
$(BUILD)/tests/replay_fcgirec: $(BUILD)/obj/tests/fuzz/fuzz_fcgirec.o $(BUILD)/obj/tests/fuzz/replay.o \
		$(BUILD)/obj/fcgi-app/fcgirec.o $(BUILD)/obj/fcgi-app/nph.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^

$(BUILD)/tests/replay_fcgiparams: $(BUILD)/obj/tests/fuzz/fuzz_fcgiparams.o $(BUILD)/obj/tests/fuzz/replay.o \
		$(BUILD)/obj/fcgi-app/fcgirec.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^

FUZZ_CC     ?= clang
FUZZ_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -DHOSTGATE_VERSION='"$(VERSION)"' -g -O1 -I. $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined
$(BUILD)/fuzz/%: tests/fuzz/%.c $(COMMON_SRC) $(POLICY_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(REDIS_LIBS) $(LIBS)
$(BUILD)/fuzz/fuzz_fcgirec: tests/fuzz/fuzz_fcgirec.c fcgi-app/fcgirec.c fcgi-app/nph.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^
$(BUILD)/fuzz/fuzz_fcgiparams: tests/fuzz/fuzz_fcgiparams.c fcgi-app/fcgirec.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^
fuzz: $(FUZZ_BINS)

unit-test: $(UNIT_BINS) $(REPLAY_BINS)
	tests/run-unit $(UNIT_BINS) -- $(REPLAY_BINS)

integration-test: all
	HOSTGATE_SANITIZE=$(SANITIZE) tests/run-integration

test: all $(UNIT_BINS) $(REPLAY_BINS)
	HOSTGATE_SANITIZE=$(SANITIZE) tests/run-all $(UNIT_BINS) -- $(REPLAY_BINS)

bench: all bench-engine
	bench/run
	bench/tls
	bench/cgi

# the engine alone (no servers): what choose costs, docs/performance.md
bench-engine: $(BUILD)/bench/choose-bench
	$(BUILD)/bench/choose-bench
$(BUILD)/bench/choose-bench: $(BUILD)/obj/bench/choose-bench.o $(LIBPOLICY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBPOLICY) $(LIBCOMMON) $(LIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(APP) $(AGENT) $(MANAGE) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(IMPORT) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf $(BUILD)

# The importer (import/, docs/importing.md): libxml2 and libyaml are its own,
# confined to import/policyxml.c and import/yamljson.c; the policy-XML fuzz
# target and the import unit tests link them too.
IMPORT_SRC    := $(wildcard import/*.c)
IMPORT_LIBOBJ := $(call obj,$(filter-out import/main.c,$(IMPORT_SRC)))
IMPORT_CFLAGS := $(shell pkg-config --cflags libxml-2.0 yaml-0.1 2>/dev/null || echo -I/usr/include/libxml2)
IMPORT_LIBS   := $(shell pkg-config --libs libxml-2.0 yaml-0.1 2>/dev/null || echo -lxml2 -lyaml)
IMPORT        := $(BUILD)/hostgate-import
all: $(IMPORT)
$(call obj,$(IMPORT_SRC)) $(BUILD)/obj/tests/fuzz/fuzz_policyxml.o \
$(BUILD)/obj/tests/unit/test_import_expr.o: ALL_CFLAGS += $(IMPORT_CFLAGS)
$(IMPORT): $(call obj,$(IMPORT_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $(call obj,$(IMPORT_SRC) $(SAN_SRC)) $(LIBPOLICY) $(LIBCOMMON) $(IMPORT_LIBS) $(LIBS)
$(BUILD)/tests/test_import_%: $(BUILD)/obj/tests/unit/test_import_%.o $(IMPORT_LIBOBJ) $(LIBPOLICY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(IMPORT_LIBOBJ) $(LIBPOLICY) $(LIBCOMMON) -lcmocka $(IMPORT_LIBS) $(LIBS)
$(BUILD)/tests/replay_policyxml: $(BUILD)/obj/tests/fuzz/fuzz_policyxml.o $(BUILD)/obj/tests/fuzz/replay.o $(IMPORT_LIBOBJ) $(LIBPOLICY) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(IMPORT_LIBS) $(LIBS)
$(BUILD)/fuzz/fuzz_policyxml: tests/fuzz/fuzz_policyxml.c $(filter-out import/main.c,$(IMPORT_SRC)) $(COMMON_SRC) $(POLICY_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(IMPORT_CFLAGS) -o $@ $^ $(IMPORT_LIBS) $(REDIS_LIBS) $(LIBS)

# hostgate-sync's `source = azure-apim` (docs/apim-sync.md) converts with the
# importer's library: one converter, linked into both programs
$(call obj,sync-agent/apim.c): ALL_CFLAGS += $(IMPORT_CFLAGS)
$(AGENT): $(IMPORT_LIBOBJ)
$(AGENT): LIBS := $(IMPORT_LIBOBJ) $(LIBPOLICY) $(LIBCOMMON) $(IMPORT_LIBS) $(LIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Long runs, for the end of a change (see docs/security-notes/hostile.md):
# every fuzz target FUZZ_SECONDS each, and the soak for SOAK_SECONDS.
.PHONY: fuzz-long soak
fuzz-long:
	tests/fuzz/run-long $(FUZZ_SECONDS)
soak: all
	bench/soak $(SOAK_SECONDS)
