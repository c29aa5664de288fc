/* kafka_mock.c: a Kafka cluster for tests: librdkafka's mock cluster served on 127.0.0.1,
 * driven by commands on stdin.
 *
 * usage: kafka_mock [-b BROKERS] TOPIC:PARTITIONS ...   (BROKERS: 1 to 9, default 1)
 * Creates the topics (the mock cluster picks each partition's leader), prints "BOOTSTRAP <host:port,...>" on stdout (flushed) and then
 * runs one command per stdin line:
 *   down <id>      broker <id> (1..BROKERS, or -1 for all) drops its connections and refuses new ones
 *   up <id>        broker <id> accepts connections again
 *   topic <name> <partitions>   creates another topic
 *   quit           exit
 * At the end of input it stays up until it is killed (SIGTERM or SIGINT end it cleanly).
 * Errors go to stderr prefixed "kafka_mock:". Kafka clients (kcat, streamhost) talk to it over
 * TCP with the real protocol. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *spec)
{
    char name[256];
    const char *colon = strrchr(spec, ':');
    int parts = colon ? atoi(colon + 1) : 0;
    size_t n = colon ? (size_t)(colon - spec) : 0;
    rd_kafka_resp_err_t err;

    if (!colon || n == 0 || n >= sizeof name || parts < 1) {
        fprintf(stderr, "kafka_mock: bad topic '%s' (expected NAME:PARTITIONS)\n", spec);
        return -1;
    }
    memcpy(name, spec, n);
    name[n] = '\0';
    err = rd_kafka_mock_topic_create(mc, name, parts, 1);
    if (err) {
        fprintf(stderr, "kafka_mock: cannot create topic %s: %s\n", name, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static void run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char cmd[32], arg[256];
    int id, parts;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (sscanf(line, "%31s", cmd) != 1)
        return;
    if (strcmp(cmd, "down") == 0 && sscanf(line, "%*s %d", &id) == 1) {
        err = rd_kafka_mock_broker_set_down(mc, id);
    } else if (strcmp(cmd, "up") == 0 && sscanf(line, "%*s %d", &id) == 1) {
        err = rd_kafka_mock_broker_set_up(mc, id);
    } else if (strcmp(cmd, "topic") == 0 && sscanf(line, "%*s %255s %d", arg, &parts) == 2) {
        err = rd_kafka_mock_topic_create(mc, arg, parts, 1);
    } else if (strcmp(cmd, "quit") == 0) {
        stopping = 1;
        return;
    } else {
        fprintf(stderr, "kafka_mock: unknown command: %s", line);
        return;
    }
    if (err)
        fprintf(stderr, "kafka_mock: %s: %s\n", cmd, rd_kafka_err2str(err));
    printf("OK %s\n", cmd);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    char errstr[512], line[512];
    int brokers = 1, i = 1, rc = 1;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;

    if (argc > 2 && strcmp(argv[1], "-b") == 0) {
        brokers = atoi(argv[2]);
        i = 3;
    }
    if (brokers < 1 || brokers > 9) {
        fprintf(stderr, "kafka_mock: -b takes 1 to 9 brokers\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    /* The producer handle only hosts the cluster; rd_kafka_new takes conf only on success. */
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        goto out_rk;
    }
    for (; i < argc; i++)
        if (create_topic(mc, argv[i]))
            goto out_mc;
    printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (!stopping && fgets(line, sizeof line, stdin))
        run_command(mc, line);
    while (!stopping)
        pause();
    rc = 0;
out_mc:
    rd_kafka_mock_cluster_destroy(mc);
out_rk:
    rd_kafka_destroy(rk);
    return rc;
}
