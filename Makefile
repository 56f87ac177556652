# mod_swiftwebsocket — see README.md.
#   make              module + example handlers (installs missing build deps)
#   make run          foreground httpd on 127.0.0.1:$(PORT) (http/ws) and :$(TLS_PORT)
#                     (https/wss, HTTP/2) serving the examples; TLS_PORT= for none
#   make test         engine tests (swift test) + integration tests against httpd
#   make conformance  Autobahn testsuite against /echo and /echo_async (ws), then /echo
#                     over wss for 1-7 and 12.1
#   make soak         1,000 connections x 1,000 random echoes, plain and compressed,
#                     some dropped; checks delivery and httpd's resources after
#   make bench        the module side by side with hummingbird-websocket, websockets
#                     and pywebsocket3 (installs and builds them); BENCH_ARGS= for options
#   make bench-idle   10,000 idle WebSockets (1,000 wss) on 64 threads, broadcast to all
#   make bench-broadcast  one message to 1,000 and 10,000 members across 4 children
#                     through Redis, beside one child and a trivial C fan-out; rooms
#                     latency, Redis CPU (installs redis-server); BENCH_BROADCAST_ARGS=
#   make install      module into apxs' LIBEXECDIR, a2enmod files, swiftwebsocket-build
#   make deb          build/libapache2-mod-swiftwebsocket_<version>_<arch>.deb and the
#                     SDK package build/swiftwebsocket-sdk_..., checked by lintian
#   make test-package installs the .deb in a clean Debian 12 root (debootstrap) and
#                     echoes through a handler built with the SDK package
#   make fuzz         libFuzzer targets over the engine (Fuzz/), FUZZ_SECONDS (300) each
#   make sanitize     engine tests under AddressSanitizer, cross-thread ones under ThreadSanitizer
#
# For CI: make sanitize (about 3 min from clean on 2 cores), then
# make fuzz FUZZ_SECONDS=60 (about 4.5 min from clean: 75 s of builds, 3 x 60 s).

PORT ?= 8080
TLS_PORT ?= 8443
SWIFT ?= swift
SWIFTC ?= swiftc
APXS ?= apxs

BUILD := build
SDK := $(BUILD)/sdk
SWIFT_BUILD := .build/release
VERSION := $(shell cat VERSION)
# Handlers carry this stamp; the module refuses those built against another
# engine or compiler (no Swift library evolution: layouts must match). It is
# worked out with the engine and kept in $(SDK)/abi, which the module and
# swiftwebsocket-build both read.
ABI = $(VERSION)+$(shell $(SWIFT) --version 2>/dev/null | sed -n 's/.*Swift version \([^ ]*\).*/\1/p' | head -1)

MODULE := $(BUILD)/mod_swiftwebsocket.so
ENGINE := $(SDK)/lib/libSwiftWebSocket.so
EXAMPLES := $(patsubst %.swift,%.so,$(wildcard examples/*_wsh.swift))
SWIFT_SOURCES := $(shell find Sources CShim/include -type f) Package.swift
SHIM_SOURCES := $(wildcard CShim/*.c CShim/*.h) CShim/include/swiftwebsocket.h

LIBEXECDIR = $(shell $(APXS) -q LIBEXECDIR)
SYSCONFDIR = $(shell $(APXS) -q SYSCONFDIR)
PREFIX ?= /usr/local
SDK_INSTALL_DIR = $(PREFIX)/lib/swiftwebsocket

.PHONY: all deps run test engine-test integration-test conformance install clean venv bench-tools bench bench-idle \
  bench-broadcast soak fuzz sanitize package-deps deb test-package

all: deps $(MODULE) $(EXAMPLES)

deps:
	@scripts/install-deps

# Order-only: apt must finish before anything compiles, even under make -j.
$(ENGINE): $(SWIFT_SOURCES) VERSION | deps
	$(SWIFT) build -c release --product SwiftWebSocket
	mkdir -p $(SDK)/lib $(SDK)/Modules
	# Replaced, not overwritten: a running httpd may have the old one mapped.
	cp $(SWIFT_BUILD)/libSwiftWebSocket.so $(ENGINE).new && mv $(ENGINE).new $(ENGINE)
	rm -rf $(SDK)/Modules/SwiftWebSocket.swiftmodule $(SDK)/Modules/WebSocketProtocol.swiftmodule
	cp $(SWIFT_BUILD)/Modules/SwiftWebSocket.swiftmodule $(SWIFT_BUILD)/Modules/SwiftWebSocket.swiftdoc $(SDK)/Modules/
	# Handlers importing the engine also load the modules it imports: the
	# protocol's and swift-log's, which it re-exports (their code is in the
	# engine library), and zlib.
	cp $(SWIFT_BUILD)/Modules/WebSocketProtocol.swiftmodule $(SWIFT_BUILD)/Modules/WebSocketProtocol.swiftdoc $(SDK)/Modules/
	rm -rf $(SDK)/Modules/CZlib $(SDK)/Modules/Logging.swiftmodule
	cp -r Sources/CZlib $(SDK)/Modules/CZlib
	cp $(SWIFT_BUILD)/Modules/Logging.swiftmodule $(SDK)/Modules/
	printf '%s' "$(ABI)" > $(SDK)/abi

# Built with the compiler flags apxs reports, directly rather than through
# libtool, so the module finds the engine next to itself once installed
# ($$ORIGIN) and in the SDK folder in this tree ($$ORIGIN/sdk/lib).
# MODULE_FLAGS: more compiler and linker flags (the package's hardening).
SHIM_C := CShim/mod_swiftwebsocket.c CShim/handshake.c CShim/parking.c CShim/configuration.c \
  CShim/connection_io.c CShim/handler_registry.c \
  CShim/broker.c CShim/trap_report.c CShim/trap_limit.c CShim/elf_symbols.c CShim/status.c \
  CShim/connection_log.c CShim/json.c
BUILD_MODULE = $(CC) -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror \
	  $(shell $(APXS) -q CFLAGS) -I$(shell $(APXS) -q INCLUDEDIR) \
	  $(shell apr-1-config --cppflags --includes) $(shell apu-1-config --includes) \
	  -ICShim -ICShim/include -DSWIFTWS_ENGINE_ABI="\"$$(cat $(SDK)/abi)\"" \
	  $(MODULE_FLAGS) $(SHIM_C) -L$(SDK)/lib -lSwiftWebSocket -lhiredis

$(MODULE): $(SHIM_SOURCES) $(ENGINE)
	$(BUILD_MODULE) -o $@ -Wl,-rpath,'$$ORIGIN:$$ORIGIN/sdk/lib'

# The packaged module: Debian's build flags (hardening: fortify, relro,
# bindnow); scripts/make-deb sets its RUNPATH to where the package puts the
# engine and the Swift runtime.
DEB_MODULE := $(BUILD)/deb/mod_swiftwebsocket.so
$(DEB_MODULE): MODULE_FLAGS = $(foreach f,CPPFLAGS CFLAGS LDFLAGS,$(shell DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get $(f)))
$(DEB_MODULE): $(SHIM_SOURCES) $(ENGINE) | package-deps
	@mkdir -p $(@D)
	$(BUILD_MODULE) -o $@

examples/%_wsh.so: examples/%_wsh.swift $(ENGINE) bin/swiftwebsocket-build
	bin/swiftwebsocket-build $<

BENCH_HANDLERS := $(patsubst %.swift,%.so,$(wildcard bench/handlers/*_wsh.swift))

bench/handlers/%_wsh.so: bench/handlers/%_wsh.swift $(ENGINE) bin/swiftwebsocket-build
	bin/swiftwebsocket-build $<

# The benchmarks' load generators and the trivial servers that show their
# ceilings (bench/*.c; zlib for pre-compressed frames).
BENCH_TOOLS := $(BUILD)/wsload $(BUILD)/trivial_echo $(BUILD)/wsfanout $(BUILD)/trivial_fanout

$(BUILD)/wsload: bench/wsload.c bench/ws_client.h | deps
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lz -lm

$(BUILD)/trivial_echo: bench/trivial_echo.c bench/ws_server.h
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/wsfanout: bench/wsfanout.c bench/ws_client.h | deps
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lz -lm

$(BUILD)/trivial_fanout: bench/trivial_fanout.c bench/ws_server.h
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench-tools: $(BENCH_TOOLS)

bench: all bench-tools
	@scripts/install-bench-deps
	.venv/bin/python bench/side_by_side.py $(BENCH_ARGS)

# 10,000 idle WebSockets (1,000 over wss) on 64 worker threads: threads,
# RSS per connection, time for a broadcast to reach them all;
# BENCH_IDLE_ARGS="--connections 2000 --tls-connections 200" for a short one,
# "--run-settings" for make run's own settings (scripts/run-httpd) and /echo.
bench-idle: all venv $(BENCH_HANDLERS)
	.venv/bin/python bench/idle.py $(BENCH_IDLE_ARGS)

# One message to every member of a group: 1,000 and 10,000 members over 4
# children with SwiftWebSocketBroker and a redis-server of its own, beside
# one child's process-local group and bench/trivial_fanout.c; then 1,000
# rooms of 10 at 1,000 publishes a second (latency, Redis CPU per delivered
# message). BENCH_BROADCAST_ARGS="--members 1000 --rounds 5 --rooms 100x10
# --seconds 2" for a short one.
bench-broadcast: all bench-tools venv
	@scripts/install-redis
	.venv/bin/python bench/broadcast.py $(BENCH_BROADCAST_ARGS)

# Every connection echoes random messages, plain then compressed, some
# dropped midway; SOAK_ARGS="--connections 100 --messages 100" for a short one.
soak: all venv
	.venv/bin/python Tests/soak/soak.py $(SOAK_ARGS)

run: all
	@scripts/run-httpd --port $(PORT) $(if $(TLS_PORT),--tls-port $(TLS_PORT)) --foreground

venv: deps
	@scripts/install-test-deps

engine-test:
	$(SWIFT) test

integration-test: all venv bench-tools
	.venv/bin/python -m pytest -q Tests/integration

test: all engine-test integration-test

# Each fuzz target is the engine's sources and its harness compiled as one
# module, so the harness reaches internal API (Inflater, FrameHeader)
# without @testable. swift-log, which the engine imports, comes from the
# engine's own release build (its module and objects). -O keeps the
# run-time exclusivity checks, unlike the release build: here they are
# worth their cost.
FUZZ_TARGETS := frames inflater handshake
FUZZ_SECONDS ?= 300
FUZZ_SUPPORT := $(wildcard Fuzz/Support/*.swift)
# The protocol and the library above it, built as one module: the
# re-export that joins them is left out.
ENGINE_SOURCES := $(filter-out %/ProtocolExport.swift,$(wildcard Sources/WebSocketProtocol/*.swift Sources/SwiftWebSocket/*.swift))

$(BUILD)/fuzz/bin/%: Fuzz/%_fuzzer.swift $(FUZZ_SUPPORT) $(ENGINE_SOURCES) $(ENGINE)
	@mkdir -p $(@D)
	$(SWIFTC) -sanitize=fuzzer,address -parse-as-library -O -wmo -swift-version 6 \
	  -module-name SwiftWebSocket -package-name swiftwebsocket -I Sources/CZlib -I $(SWIFT_BUILD)/Modules \
	  $(ENGINE_SOURCES) $(FUZZ_SUPPORT) $< $(SWIFT_BUILD)/Logging.build/*.o -use-ld=lld -o $@

fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/bin/%)
	@scripts/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Each sanitizer builds in a folder of its own, apart from the plain build.
# The tests use Swift Testing: XCTest's runner, with nothing to run, leaks
# at exit, which LeakSanitizer would count as a failure.
sanitize: | deps
	$(SWIFT) test --disable-xctest --sanitize=address --scratch-path .build-asan
	TSAN_OPTIONS=suppressions=$(CURDIR)/Tests/tsan-suppressions.txt \
	  $(SWIFT) test --disable-xctest --sanitize=thread --scratch-path .build-tsan --filter 'CrossThreadTests|HandlerAPITests|ParkedConnectionTests|AsyncSupportTests'

# /echo and /echo_async side by side (wstest is one Python thread, and
# most cases wait on the wire), then wss.
conformance: all
	@scripts/install-autobahn >/dev/null
	@scripts/conformance & event=$$!; scripts/conformance --path /echo_async; async=$$?; \
	  wait $$event && [ $$async = 0 ]
	@scripts/conformance --tls "1.*" "2.*" "3.*" "4.*" "5.*" "6.*" "7.*" "12.1.*"

install: all
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SDK_INSTALL_DIR)/lib $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(MODULE) $(ENGINE) $(DESTDIR)$(LIBEXECDIR)/
	ln -sf $(LIBEXECDIR)/libSwiftWebSocket.so $(DESTDIR)$(SDK_INSTALL_DIR)/lib/libSwiftWebSocket.so
	cp -r $(SDK)/Modules $(SDK)/abi $(DESTDIR)$(SDK_INSTALL_DIR)/
	sed 's|^sdk=.*|sdk=$${SWIFTWEBSOCKET_SDK:-$(SDK_INSTALL_DIR)}|' bin/swiftwebsocket-build \
	  > $(DESTDIR)$(PREFIX)/bin/swiftwebsocket-build
	chmod 755 $(DESTDIR)$(PREFIX)/bin/swiftwebsocket-build
	install -d $(DESTDIR)$(SYSCONFDIR)/mods-available
	install -m 644 apache-conf/swiftwebsocket.load apache-conf/swiftwebsocket.conf \
	  $(DESTDIR)$(SYSCONFDIR)/mods-available/
	@echo "Installed. Enable with: a2enmod swiftwebsocket, then set SwiftWebSocketHandlerRoot."

package-deps:
	@scripts/install-package-deps

# build/libapache2-mod-swiftwebsocket_$(VERSION)_<arch>.deb (the module, the
# engine and the Swift runtime it needs) and build/swiftwebsocket-sdk_...deb
# (swiftwebsocket-build and the Swift modules, for the machine that builds
# handlers), made with dpkg-shlibdeps, dpkg-gencontrol and dpkg-deb from
# packaging/debian; lintian checks both.
deb: all $(DEB_MODULE) package-deps
	@scripts/make-deb

# Installs the package in a clean Debian 12 root (debootstrap, cached in
# build/package-test/) as an administrator would and echoes through a
# handler built here with the SDK package; see Tests/package/test_install.sh.
test-package: deb
	@Tests/package/test_install.sh

clean:
	rm -rf $(BUILD) examples/*.so .build-asan .build-tsan
