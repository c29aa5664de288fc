#!/usr/bin/python3
"""flume_sink: Spark's sink on a Flume agent (SparkFlumeProtocol) as a test peer, for
FlumeUtils.createPollingStream: serves getEventBatch, ack and nack with python3-avro's encoding
over Avro's Netty framing, one thread per connection, on 127.0.0.1.

  flume_sink.py [--port P] --events N [--first I] [--error-first K] [--barrier K]

Holds events I .. I+N-1 (body "s<id>:" then UTF-8 text, or binary bytes for every third;
headers {"id": "<id>"} except for every fifth, which has none). getEventBatch(n) hands out up to
n events under a new sequence number; ack marks them delivered (an event acked twice, or an
unknown sequence number, is reported as BAD); nack puts them back first in line, as does a
connection that closes with batches not acked (Spark's sink rolls back their transactions).
When nothing is left, getEventBatch answers an error batch (errorMsg set), as Spark's sink
does. --error-first K: the first K getEventBatch calls answer an error batch. --barrier K: the
first K getEventBatch calls are answered only once K of them are in flight at once (so K
concurrent requests are proven), or after 30 s with BARRIER TIMEOUT.
Prints PORT p, then one line per event: CONN k (a new connection with its handshake match),
BATCH seq n, ACK seq n, NACK seq n, ROLLBACK seq n, BAD ..., ALLACKED when every event is acked."""
import argparse
import collections
import socket
import sys
import threading

import flume_avro as fa

P = fa.SINK_PROTOCOL
lock = threading.Condition()
out_lock = threading.Lock()


def say(*words):
    with out_lock:
        print(*words, flush=True)


class Sink:
    def __init__(self, args):
        self.pending = collections.deque(range(args.first, args.first + args.events))
        self.total = args.events
        self.outstanding = {}   # seq -> (conn id, [event ids])
        self.acked = set()
        self.seq = 0
        self.calls = 0
        self.errors_left = args.error_first
        self.barrier = args.barrier
        self.waiting = 0
        self.conns = 0

    @staticmethod
    def event(i):
        tail = bytes([0, 255, 10, i % 256]) if i % 3 == 0 else ("évt ✓ %d" % i).encode()
        return {"headers": {} if i % 5 == 0 else {"id": str(i)}, "body": b"s%d:" % i + tail}

    def get_batch(self, conn, n):
        with lock:
            self.calls += 1
            if self.barrier > 0:
                self.barrier -= 1
                self.waiting += 1
                lock.notify_all()
                if not lock.wait_for(lambda: self.waiting >= self.barrier_size, timeout=30):
                    say("BARRIER TIMEOUT", self.waiting)
            if self.errors_left > 0:
                self.errors_left -= 1
                return {"errorMsg": "simulated sink error", "sequenceNumber": "", "events": []}
            if not self.pending:
                return {"errorMsg": "Tried several times, but did not get any events from the channel!",
                        "sequenceNumber": "", "events": []}
            ids = [self.pending.popleft() for _ in range(min(n, len(self.pending)))]
            self.seq += 1
            seq = "seq-%d" % self.seq
            self.outstanding[seq] = (conn, ids)
            say("BATCH", seq, len(ids))
            return {"errorMsg": "", "sequenceNumber": seq, "events": [self.event(i) for i in ids]}

    def ack(self, seq):
        with lock:
            if seq not in self.outstanding:
                say("BAD unknown sequence number acked:", seq)
                return
            _, ids = self.outstanding.pop(seq)
            for i in ids:
                if i in self.acked:
                    say("BAD event acked twice:", i)
                self.acked.add(i)
            say("ACK", seq, len(ids))
            if len(self.acked) == self.total:
                say("ALLACKED")

    def nack(self, seq, why="NACK"):
        with lock:
            if seq not in self.outstanding:
                say("BAD unknown sequence number nacked:", seq)
                return
            _, ids = self.outstanding.pop(seq)
            self.pending.extendleft(reversed(ids))
            say(why, seq, len(ids))

    def closed(self, conn):
        with lock:
            seqs = [s for s, (c, _) in self.outstanding.items() if c == conn]
        for s in seqs:
            self.nack(s, "ROLLBACK")

    def serve(self, sock):
        with lock:
            self.conns += 1
            conn = self.conns
        c = fa.Conn(sock)
        handshaken = False
        try:
            while True:
                serial, data = c.recv_frame()
                dec = fa.Decoder(data)
                head = b""
                if not handshaken:
                    req = dec.handshake_request()
                    if req["clientHash"] == P.md5 or req["clientProtocol"] is not None:
                        match = "BOTH" if req["serverHash"] == P.md5 else "CLIENT"
                        head = fa.handshake_response(match, None if match == "BOTH" else P)
                        handshaken = True
                        say("CONN", conn, match)
                    else:
                        c.send_frame(serial, [fa.handshake_response("NONE", P)])
                        continue
                name, params = dec.call_request(P)
                if name == "getEventBatch":
                    resp = self.get_batch(conn, params["n"])
                elif name == "ack":
                    self.ack(params["sequenceNumber"])
                    resp = None
                elif name == "nack":
                    self.nack(params["sequenceNumber"])
                    resp = None
                else:
                    say("BAD message", name)
                    return
                c.send_frame(serial, [head + fa.call_response(P, name, resp)])
        except (EOFError, ConnectionError):
            pass
        finally:
            c.close()
            self.closed(conn)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--error-first", type=int, default=0)
    ap.add_argument("--barrier", type=int, default=0)
    args = ap.parse_args()
    sink = Sink(args)
    sink.barrier_size = args.barrier
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(16)
    say("PORT", srv.getsockname()[1])
    while True:
        s, _ = srv.accept()
        threading.Thread(target=sink.serve, args=(s,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
