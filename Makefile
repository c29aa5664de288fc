# Makefile: builds host/streamhost, runs the main job, the specs and the benchmarks. GNU make.
PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
PKGS     := luajit libuv rdkafka avro-c zlib libcrypto libcurl jansson
SANITIZE ?=

BASE_CPPFLAGS := -D_GNU_SOURCE -Ihost
CPPFLAGS += $(BASE_CPPFLAGS) -DSH_LUA_DIR='"$(CURDIR)/lua"' -DSH_UI_DIR='"$(CURDIR)/ui"'
# What `make install` builds knows the install prefix, never the source tree.
INSTALL_CPPFLAGS := $(BASE_CPPFLAGS) -DSH_LUA_DIR='"$(PREFIX)/share/streamhost/lua"' \
                    -DSH_UI_DIR='"$(PREFIX)/share/streamhost/ui"'
DESTDIR  ?=
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
             host/sh_ops.c host/sh_embed.c host/sh_events.c \
             connectors/socket/sh_in_socket.c connectors/kafka/sh_in_kafka.c \
             connectors/kafka/sh_in_kafka_recv.c connectors/kafka/sh_in_kafka_zk.c \
             connectors/flume/sh_flume_avro.c connectors/flume/sh_flume_frame.c \
             connectors/flume/sh_in_flume_push.c connectors/flume/sh_in_flume_poll.c \
             connectors/kinesis/sh_sigv4.c connectors/kinesis/sh_curl_uv.c \
             connectors/kinesis/sh_kinesis_call.c connectors/kinesis/sh_in_kinesis_block.c \
             connectors/kinesis/sh_in_kinesis_recv.c
MAIN_SRC  := host/sh_main.c

OBJDIR    := $(BUILD)/obj$(if $(SANITIZE),-asan)
HOST_OBJS := $(HOST_SRCS:%.c=$(OBJDIR)/%.o)
MAIN_OBJ  := $(MAIN_SRC:%.c=$(OBJDIR)/%.o)
EXE       := $(if $(SANITIZE),$(BUILD)/streamhost-asan,host/streamhost)
C_TESTS   := $(patsubst spec/c/%.c,$(BUILD)/ctest$(if $(SANITIZE),-asan)/%,$(wildcard spec/c/test_*.c))

EXAMPLES  := $(BUILD)/examples/game_server$(if $(SANITIZE),-asan)

all: $(EXE) $(EXAMPLES)

# examples/embed: an embedder built in the tree against the host's objects.
$(EXAMPLES): examples/embed/game_server.c $(HOST_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  LD  %s\n' $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(HOST_OBJS) $(LDLIBS)

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

# The embedding benchmarks' program (scripts/bench/reload).
$(BUILD)/bench/reload_bench: scripts/bench/reload_bench.c $(HOST_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  LD  %s\n' $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(HOST_OBJS) $(LDLIBS)

# -- The library and make install ---------------------------------------------------------------
# Position-independent objects compiled for the install prefix: libstreamhost.a, .so and the
# installed executable.
# (one build per prefix: the prefix is compiled in)
PIC_DIR   := $(BUILD)/install$(subst /,_,$(PREFIX))
PIC_OBJS  := $(HOST_SRCS:%.c=$(PIC_DIR)/%.o)
LIB_A     := $(PIC_DIR)/libstreamhost.a
LIB_SO    := $(PIC_DIR)/libstreamhost.so
INST_EXE  := $(PIC_DIR)/streamhost
PC_FILE   := $(PIC_DIR)/streamhost.pc
VERSION   := $(shell sed -n 's/^\#define STREAMHOST_VERSION "\(.*\)"/\1/p' host/streamhost.h)

$(PIC_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),:,printf '  CC  %s\n' $@)
	$(Q)$(CC) $(INSTALL_CPPFLAGS) $(CFLAGS) -fdebug-prefix-map=$(CURDIR)=. -fPIC -MMD -MP -c -o $@ $<

$(LIB_A): $(PIC_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(PIC_OBJS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -shared -Wl,-soname,libstreamhost.so -o $@ $^ $(LDLIBS)

$(INST_EXE): $(PIC_OBJS) $(PIC_DIR)/host/sh_main.o
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(PC_FILE): Makefile host/streamhost.h
	@mkdir -p $(dir $@)
	$(Q)printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	    'Name: streamhost' 'Description: micro-batch streaming jobs in LuaJIT, embeddable' \
	    'Version: $(VERSION)' 'Requires: libuv' 'Requires.private: luajit' \
	    'Cflags: -I$${includedir}' \
	    'Libs: -L$${libdir} -lstreamhost -Wl,-E' 'Libs.private: -lpthread -lm -ldl' > $@

lib: $(LIB_A) $(LIB_SO) $(INST_EXE) $(PC_FILE)

# Installs under $(DESTDIR)$(PREFIX): bin/streamhost, include/streamhost.h, lib/libstreamhost.a
# and .so, lib/pkgconfig/streamhost.pc, share/streamhost/lua (the modules) and ui.
install: lib
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/streamhost
	$(Q)install -m 755 $(INST_EXE) $(DESTDIR)$(PREFIX)/bin/streamhost
	$(Q)install -m 644 host/streamhost.h $(DESTDIR)$(PREFIX)/include/streamhost.h
	$(Q)install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/libstreamhost.a
	$(Q)install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libstreamhost.so
	$(Q)install -m 644 $(PC_FILE) $(DESTDIR)$(PREFIX)/lib/pkgconfig/streamhost.pc
	$(Q)rm -rf $(DESTDIR)$(PREFIX)/share/streamhost/lua $(DESTDIR)$(PREFIX)/share/streamhost/ui
	$(Q)cp -R lua $(DESTDIR)$(PREFIX)/share/streamhost/lua
	$(Q)cp -R ui $(DESTDIR)$(PREFIX)/share/streamhost/ui

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/streamhost $(DESTDIR)$(PREFIX)/include/streamhost.h \
	    $(DESTDIR)$(PREFIX)/lib/libstreamhost.a $(DESTDIR)$(PREFIX)/lib/libstreamhost.so \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/streamhost.pc $(DESTDIR)$(PREFIX)/share/streamhost

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

-include $(HOST_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(PIC_OBJS:.o=.d)

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
	$(Q)$(MAKE) --no-print-directory all $(BUILD)/bench/reload_bench
	$(Q)scripts/bench/run

clean:
	rm -rf $(BUILD) host/streamhost

.PHONY: all ctests peers lib install uninstall run test asan bench clean
