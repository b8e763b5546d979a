# sessrec top-level Makefile.
#   make          build everything into build/ (programs in build/bin/)
#   make check    build and run every test (unit, sanitizers, end-to-end, fuzz smoke)
#   make deps     install the Debian packages needed to build and test
#   make bench    run the benchmarks
#   make vmlinux  regenerate vmlinux/<arch>/vmlinux.h from the running kernel
#   V=1           show full commands

BUILD ?= build
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
PROTOC_C ?= protoc-c
PYTHON ?= /usr/bin/python3
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.1.0)

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-9s %s\n' "$(1)" "$(2)";
endif

PKGS := libbpf libelf zlib libdeflate libprotobuf-c yaml-0.1 jansson libcrypto uuid libmicrohttpd sqlite3 vterm \
	gnutls libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# format-truncation: snprintf into fixed path buffers is bounded by design; where a cut
# path would matter the code checks the length itself.
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Wshadow -Wformat=2 -Wstrict-prototypes
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARN) -fno-strict-aliasing \
	-DSESSREC_VERSION='"$(VERSION)"' -I$(BUILD)/gen -Ilib -Ibpf $(PKG_CFLAGS)
LDLIBS = $(PKG_LIBS) -lpthread
ifeq ($(SAN),1)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=address,undefined
endif

# ---------------------------------------------------------------- sources
PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/gen/%.skel.h,$(BPF_SRCS))
VMLINUX_H := vmlinux/$(ARCH)/vmlinux.h

LIB_SRCS := $(wildcard lib/*.c)
AGENT_SRCS := $(filter-out agent/main.c,$(wildcard agent/*.c))
CLI_SRCS := $(filter-out cli/main.c,$(wildcard cli/*.c))
COLLECTOR_SRCS := $(filter-out collector/main.c,$(wildcard collector/*.c))
OBJ := $(BUILD)/obj
LIB_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRCS)) $(patsubst $(BUILD)/gen/%.c,$(OBJ)/gen/%.o,$(PROTO_C))
AGENT_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(AGENT_SRCS))
CLI_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(CLI_SRCS))
COLLECTOR_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(COLLECTOR_SRCS))
LIBSESSREC := $(BUILD)/lib/libsessrec.a
LIBAGENT := $(BUILD)/lib/libagent.a
LIBCLI := $(BUILD)/lib/libcli.a
LIBCOLLECTOR := $(BUILD)/lib/libcollector.a

BINS := $(BUILD)/bin/sessrec-agent $(BUILD)/bin/sessrec $(BUILD)/bin/sessrec-collector
PAM_SO := $(BUILD)/lib/pam_sessrec.so
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.SECONDARY:
.DELETE_ON_ERROR:
.PHONY: all deps check unit unit-asan e2e fuzz kmatrix bench vmlinux format format-check clean demo
all: $(BINS) $(BENCH_BINS) $(PAM_SO)

# ---------------------------------------------------------------- deps
DEB_PKGS := clang llvm make gcc pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev libdeflate-dev \
	protobuf-c-compiler libprotobuf-c-dev libyaml-dev libjansson-dev libssl-dev uuid-dev \
	libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libsqlite3-dev libcmocka-dev \
	python3-pytest libclang-rt-14-dev libvterm-dev iproute2 clang-format util-linux procps curl \
	asciinema prometheus libpam0g-dev openssh-server openssh-client python3-yaml systemd openssl shellcheck valgrind
deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEB_PKGS) 2>/dev/null | \
		awk '$$NF=="installed"{print $$1}' | sort > $(or $(TMPDIR),/tmp)/.sessrec-have; \
		for p in $(DEB_PKGS); do grep -qx "$$p" $(or $(TMPDIR),/tmp)/.sessrec-have || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS      installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install:" $$missing >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
			|| { echo "make deps: apt-get install failed for:" $$missing >&2; exit 1; }; \
	fi

# The build needs the packages; check them once per invocation (quiet when all present).
$(BUILD)/.deps-ok: | deps
	@mkdir -p $(BUILD) && touch $@

# ---------------------------------------------------------------- generated
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto | $(BUILD)/.deps-ok
	$(call msg,PROTOC,$<)
	$(Q)mkdir -p $(BUILD)/gen && $(PROTOC_C) --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c bpf/*.h $(wildcard bpf/*.bpf.h) $(VMLINUX_H) | $(BUILD)/.deps-ok
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(BUILD)/bpf && $(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) \
		-I$(dir $(VMLINUX_H)) -Ibpf -Wall -Werror -c $< -o $@.tmp && \
		$(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp

$(BUILD)/gen/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)mkdir -p $(BUILD)/gen && $(BPFTOOL) gen skeleton $< name $* > $@.tmp && mv $@.tmp $@

vmlinux:
	$(call msg,VMLINUX,$(VMLINUX_H))
	$(Q)mkdir -p $(dir $(VMLINUX_H)) && \
		$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX_H)

# ---------------------------------------------------------------- objects
GEN_HDRS := $(PROTO_H) $(SKELS)
# Only the agent needs the BPF skeletons; lib/ and cli/ build without them.
$(OBJ)/agent/%.o: agent/%.c $(GEN_HDRS) | $(BUILD)/.deps-ok
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@) && $(CC) $(CFLAGS) -MMD -MP -c $< -o $@
$(OBJ)/%.o: %.c $(PROTO_H) | $(BUILD)/.deps-ok
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@) && $(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	$(call msg,CC,$<)
	$(Q)mkdir -p $(dir $@) && $(CC) $(CFLAGS) -Wno-error -c $< -o $@

$(LIBSESSREC): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)mkdir -p $(dir $@) && rm -f $@ && ar rcs $@ $^
$(LIBAGENT): $(AGENT_OBJS)
	$(call msg,AR,$@)
	$(Q)mkdir -p $(dir $@) && rm -f $@ && ar rcs $@ $^
$(LIBCLI): $(CLI_OBJS)
	$(call msg,AR,$@)
	$(Q)mkdir -p $(dir $@) && rm -f $@ && ar rcs $@ $^
$(LIBCOLLECTOR): $(COLLECTOR_OBJS)
	$(call msg,AR,$@)
	$(Q)mkdir -p $(dir $@) && rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/sessrec-agent: $(OBJ)/agent/main.o $(LIBAGENT) $(LIBSESSREC)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@) && $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/sessrec: $(OBJ)/cli/main.o $(LIBCLI) $(LIBSESSREC)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@) && $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/sessrec-collector: $(OBJ)/collector/main.o $(LIBCOLLECTOR) $(LIBSESSREC)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@) && $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The PAM module is loaded into sshd (or login, su...): position-independent objects of
# its own, only pam_sm_* exported, no sanitizer (it cannot be loaded into an
# uninstrumented host), undefined symbols refused at link time.
PAM_OBJS := $(OBJ)/pic/pam/pam_sessrec.o $(OBJ)/pic/lib/frame.o $(OBJ)/pic/lib/util.o \
	$(OBJ)/pic/gen/agent.pb-c.o
PAM_CFLAGS = $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(CFLAGS)) -fPIC -fvisibility=hidden
$(OBJ)/pic/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	$(call msg,CC,$< (pic))
	$(Q)mkdir -p $(dir $@) && $(CC) $(PAM_CFLAGS) -Wno-error -c $< -o $@
$(OBJ)/pic/%.o: %.c $(PROTO_H) | $(BUILD)/.deps-ok
	$(call msg,CC,$< (pic))
	$(Q)mkdir -p $(dir $@) && $(CC) $(PAM_CFLAGS) -MMD -MP -c $< -o $@
$(PAM_SO): $(PAM_OBJS)
	$(call msg,LD,$@)
	$(Q)mkdir -p $(dir $@) && $(CC) -shared -fPIC -Wl,-z,defs -Wl,-z,relro,-z,now -o $@.tmp $^ \
		-lpam -lprotobuf-c -luuid && mv $@.tmp $@

# tests/unit/test_agent_*.c link the agent's modules, test_cli_*.c the CLI's,
# every other test only lib/.
TEST_LD = $(CC) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $(filter %.c %.a,$^) $(LDLIBS) -lcmocka
$(BUILD)/tests/test_agent_%: tests/unit/test_agent_%.c $(LIBAGENT) $(LIBSESSREC) $(GEN_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@) && $(TEST_LD)
$(BUILD)/tests/test_collector_%: tests/unit/test_collector_%.c $(LIBCOLLECTOR) $(LIBSESSREC) $(PROTO_H)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@) && $(TEST_LD)
$(BUILD)/tests/test_cli_%: tests/unit/test_cli_%.c $(LIBCLI) $(LIBSESSREC) $(PROTO_H)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@) && $(TEST_LD)
$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIBSESSREC) $(PROTO_H)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@) && $(TEST_LD)

$(BUILD)/bench/%: bench/%.c $(LIBAGENT) $(LIBSESSREC) $(GEN_HDRS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@) && $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBAGENT) $(LIBSESSREC) $(LDLIBS)

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------- fuzzing
# libFuzzer targets for every parser of outside input; `make fuzz` runs each
# for FUZZ_SECONDS (new inputs go to build/fuzz/corpus, seeds stay in tests/fuzz/corpus).
FUZZ_SECONDS ?= 15
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_NAMES))
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -I$(BUILD)/gen -Ilib -Ibpf -Iagent -Icollector $(PKG_CFLAGS)
# Every source compiled once with the fuzzing flags into one archive; each
# target links only the objects it needs from it.
FUZZ_OBJ := $(BUILD)/fuzz/obj
FUZZ_A := $(BUILD)/fuzz/libsessrec-fuzz.a
FUZZ_SRCS := $(LIB_SRCS) agent/config.c $(COLLECTOR_SRCS)
$(FUZZ_OBJ)/%.o: %.c $(PROTO_H)
	$(call msg,FUZZ-CC,$<)
	$(Q)mkdir -p $(dir $@) && $(CLANG) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_OBJ)/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	$(call msg,FUZZ-CC,$<)
	$(Q)mkdir -p $(dir $@) && $(CLANG) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_A): $(patsubst %.c,$(FUZZ_OBJ)/%.o,$(FUZZ_SRCS)) \
		$(patsubst $(BUILD)/gen/%.c,$(FUZZ_OBJ)/gen/%.o,$(PROTO_C))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_A)
	$(call msg,FUZZ-LD,$@)
	$(Q)mkdir -p $(dir $@) && $(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_A) $(LDLIBS)

fuzz: $(FUZZ_BINS)
	@for n in $(FUZZ_NAMES); do \
		echo "  FUZZ      $$n ($(FUZZ_SECONDS) s)"; mkdir -p $(BUILD)/fuzz/corpus/$$n; \
		$(BUILD)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=1024 \
			-print_final_stats=0 $(BUILD)/fuzz/corpus/$$n tests/fuzz/corpus/$$n \
			> $(BUILD)/fuzz/$$n.log 2>&1 || { tail -40 $(BUILD)/fuzz/$$n.log; exit 1; }; \
		grep -E '^#[0-9]+ *DONE' $(BUILD)/fuzz/$$n.log | sed 's/^/            /'; \
	done

# ---------------------------------------------------------------- tests
unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
		echo "  UNIT      $$t"; $$t || fail=1; done; exit $$fail

unit-asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(BUILD)/asan SAN=1 CFLAGS='-O1 -g' unit

e2e: all
	$(Q)cd tests/e2e && SESSREC_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q --maxfail=5 -p no:cacheprovider $(PYTEST_ARGS) .

# The deployment files (deploy/kubernetes, deploy/docker, deploy/systemd) and
# docs/configuration.md, checked against each other and the programs.
.PHONY: deploy-check
deploy-check: $(BINS)
	$(Q)SESSREC_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/deploy

check: all
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory unit-asan
	$(Q)$(MAKE) --no-print-directory deploy-check
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)$(MAKE) --no-print-directory e2e
	$(Q)$(MAKE) --no-print-directory kmatrix
	$(Q)$(MAKE) --no-print-directory format-check

# The BPF side on Debian's other kernels (6.1, 6.12) under QEMU.
kmatrix: all
	$(Q)SESSREC_BUILD=$(abspath $(BUILD)) tests/kmatrix/run.sh

bench: all
	$(Q)$(PYTHON) bench/run.py --build $(abspath $(BUILD))
	$(Q)$(PYTHON) bench/collector_bench.py --build $(abspath $(BUILD))
	$(Q)bench/transcript_bench.sh $(abspath $(BUILD))

# make demo: collector, agent and a scripted session on this machine, what sessrec made
# of it, then everything stopped and removed (demo/demo.sh). make run: a collector and an
# agent to try by hand, until Ctrl-C (demo/run.sh). Both as root.
.PHONY: demo run
demo: deps all
	$(Q)SESSREC_BUILD=$(abspath $(BUILD)) demo/demo.sh
run: deps all
	$(Q)SESSREC_BUILD=$(abspath $(BUILD)) demo/run.sh

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null | grep -v '^vmlinux/')
format:
	$(Q)clang-format -i $(FORMAT_SRCS)
format-check:
	$(call msg,FORMAT,check)
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRCS)

clean:
	rm -rf $(BUILD)
