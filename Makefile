# Makefile: builds host/streamhost, runs the main job, the specs and the benchmarks. GNU make.
PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
PKGS     := luajit libuv rdkafka
SANITIZE ?=

CPPFLAGS += -D_GNU_SOURCE -DSH_LUA_DIR='"$(CURDIR)/lua"' -DSH_UI_DIR='"$(CURDIR)/ui"' -Ihost
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -pthread \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SANITIZE)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm -ldl
LDFLAGS  += -Wl,-E $(SANITIZE)  # ffi.C must resolve the sh_ffi_* symbols
Q := $(if $(V),,@)

HOST_SRCS := host/sh_blob.c host/sh_util.c host/sh_lua.c host/sh_pool.c host/sh_fnreg.c \
             host/sh_host.c host/sh_ffi.c host/sh_files.c host/sh_sched.c host/sh_recv.c \
             host/sh_text_server.c host/sh_ckpt_file.c host/sh_ckpt_writer.c host/sh_ffi_ckpt.c \
             host/sh_buf.c host/sh_status.c host/sh_http.c host/sh_api.c host/sh_metrics.c host/sh_ui.c \
             connectors/socket/sh_in_socket.c connectors/kafka/sh_in_kafka.c \
             connectors/kafka/sh_in_kafka_recv.c connectors/kafka/sh_in_kafka_zk.c
MAIN_SRC  := host/sh_main.c

OBJDIR    := $(BUILD)/obj$(if $(SANITIZE),-asan)
HOST_OBJS := $(HOST_SRCS:%.c=$(OBJDIR)/%.o)
MAIN_OBJ  := $(MAIN_SRC:%.c=$(OBJDIR)/%.o)
EXE       := $(if $(SANITIZE),$(BUILD)/streamhost-asan,host/streamhost)
C_TESTS   := $(patsubst spec/c/%.c,$(BUILD)/ctest$(if $(SANITIZE),-asan)/%,$(wildcard spec/c/test_*.c))

all: $(EXE)

$(EXE): $(HOST_OBJS) $(MAIN_OBJ)
	@$(if $(V),:,printf '  LD  %s\n' $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  CC  %s\n' $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# C unit tests link the host objects they test.
$(BUILD)/ctest$(if $(SANITIZE),-asan)/%: spec/c/%.c $(HOST_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  LD  %s\n' $@)
	$(Q)$(CC) $(CPPFLAGS) -Iconnectors/socket $(CFLAGS) $(LDFLAGS) -o $@ $< $(HOST_OBJS) $(LDLIBS)

ctests: $(C_TESTS)

# Test peers the specs drive (real sockets on 127.0.0.1).
PEERS := $(BUILD)/peers/line_server $(BUILD)/peers/kafka_mock

$(BUILD)/peers/%: scripts/peers/%.c
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  CC  %s\n' $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $<

# The Kafka mock cluster links librdkafka.
$(BUILD)/peers/kafka_mock: scripts/peers/kafka_mock.c
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  CC  %s\n' $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(shell pkg-config --libs rdkafka)

peers: $(PEERS)

-include $(HOST_OBJS:.o=.d) $(MAIN_OBJ:.o=.d)

# The main job: a word count over text the host generates and serves on a local socket.
run:
	$(Q)scripts/setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)host/streamhost --master 'local[2]' examples/wordcount_demo.lua

test:
	$(Q)scripts/setup
	$(Q)$(MAKE) --no-print-directory all ctests peers
	$(Q)scripts/test

# The whole suite with AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(Q)scripts/setup
	$(Q)$(MAKE) --no-print-directory SANITIZE='-fsanitize=address,undefined -fno-omit-frame-pointer' all ctests peers
	$(Q)STREAMHOST=$(BUILD)/streamhost-asan CTEST_DIR=$(BUILD)/ctest-asan scripts/test

bench:
	$(Q)scripts/setup
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench/run

clean:
	rm -rf $(BUILD) host/streamhost

.PHONY: all ctests peers run test asan bench clean
