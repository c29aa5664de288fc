#!/usr/bin/python3
"""flume_client: a Flume agent's Avro sink as a test peer: sends events to an Avro source
(FlumeUtils.createStream) with python3-avro's encoding over Avro's Netty framing and checks
every answer.

  flume_client.py --port P [--host H] [--compress] [--events N] [--batch M] [--first I]
                  [--unknown-hash] [--expect FILE] [--mode send|half|malformed|text]

send: N events numbered from I, as `append` calls (every third call) and `appendBatch` calls of
up to M events; every answer must be OK (exit status 1 otherwise). Bodies mix UTF-8 text and
binary bytes, some events have no headers. With --expect, one line per event is appended to
FILE: the body in hex, a space, the headers (sorted key NUL value NUL ...) in hex.
half: one good appendBatch (answered OK), then half a frame of the next, and the connection
closes. badframe: the same, then a frame header announcing 2^32-16 buffers; the server must
close the connection. malformed: one good appendBatch, then a frame whose Avro is garbage (a negative body
length); the server must close the connection. text: the lines of --text (a file) as events
in appendBatch calls of M (headers empty), as fast as answers come. --unknown-hash: the first handshake offers a
hash the server cannot know, so it must answer NONE with its protocol; the client then sends
its protocol. --retry: a request answered FAILED is sent again (printing FAILED), as a Flume
agent's sink does. resilient: see resilient(). burst: after the calls above, see burst().
toomany: after them, one appendBatch of --events empty events (more than a request may hold). Prints "MATCH <BOTH|CLIENT>" after the handshake and "DONE <n>" at the end."""
import argparse
import hashlib
import struct
import sys
import time

import flume_avro as fa

P = fa.SOURCE_PROTOCOL


def event(i):
    headers = {} if i % 5 == 0 else {"seq": str(i), "tag": "ünï %d" % (i % 7)}
    if i % 4 == 1:
        body = bytes([i % 256, 0, 255, 10, 13, 0x80]) + b"bin"
    else:
        body = ("event %d — ünïcødé ✓" % i).encode("utf-8")
    return {"headers": headers, "body": body}


def describe(ev):
    h = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in sorted(ev["headers"].items()))
    return ev["body"].hex() + " " + h.hex()


class Client:
    def __init__(self, args):
        self.conn = fa.Conn.connect(args.host, args.port, args.compress)
        self.serial = 0
        self.handshaken = False
        self.unknown = args.unknown_hash

    def request_bytes(self, name, params, send_protocol=False):
        parts = b""
        if not self.handshaken:
            if self.unknown and not send_protocol:
                # A hash no server knows (a protocol text it never saw), without the text.
                bogus = hashlib.md5(b"not the protocol").digest()
                parts = fa.encode(fa.avro.ipc.HANDSHAKE_REQUEST_SCHEMA, {
                    "clientHash": bogus, "clientProtocol": None, "serverHash": P.md5, "meta": None})
            else:
                parts = fa.handshake_request(P, send_protocol)
        return parts + fa.call_request(P, name, params)

    def call(self, name, params):
        send_protocol = False
        while True:
            self.serial += 1
            self.conn.send_frame(self.serial, [self.request_bytes(name, params, send_protocol)])
            serial, data = self.conn.recv_frame()
            if serial != self.serial:
                sys.exit("flume_client: answer to serial %d, expected %d" % (serial, self.serial))
            dec = fa.Decoder(data)
            if not self.handshaken:
                hs = dec.handshake_response()
                if hs["match"] == "NONE":
                    if send_protocol:
                        sys.exit("flume_client: handshake NONE even with our protocol")
                    # The server must tell its protocol, with the hash python3-avro computes for it.
                    if hs["serverProtocol"] is None or hs["serverHash"] != P.md5:
                        sys.exit("flume_client: NONE without the server's protocol and hash: %r" % (hs,))
                    if fa.avro.protocol.parse(hs["serverProtocol"]).md5 != P.md5:
                        sys.exit("flume_client: the server's protocol is not AvroSourceProtocol")
                    print("NONE", flush=True)
                    send_protocol = True
                    continue
                self.handshaken = True
                print("MATCH", hs["match"], flush=True)
            status = dec.call_response(P, name)
            if not dec.at_end():
                sys.exit("flume_client: bytes after the response")
            return status


def resilient(args):
    """Events with body e<id> and header id, in appendBatch calls of --batch; a call that is not
    answered OK (refused connection, a connection lost, FAILED) is sent again on a new connection
    until it is, as a Flume agent does when its Avro source goes away; prints OK <n> after each."""
    deadline = time.time() + 120
    i, n, c = args.first, args.first + args.events, None
    while i < n:
        evs = [{"headers": {"id": str(j)}, "body": b"e%d" % j} for j in range(i, min(n, i + args.batch))]
        status = None
        try:
            if c is None:
                c = Client(args)
            status = c.call("appendBatch", {"events": evs})
        except (OSError, EOFError):
            c = None
        if status == "OK":
            i += len(evs)
            print("OK", i - args.first, flush=True)
            time.sleep(args.pause)
        elif time.time() > deadline:
            sys.exit("flume_client: gave up at event %d" % i)
        else:
            time.sleep(0.05)
    print("DONE", n - args.first, flush=True)


def burst(c, args):
    """--events `append` calls of one small event each (body "burst"), every request written at
    once in one (compressed) write before any answer is read; every answer must be
    OK, for its own serial, in order."""
    # One request encoded by python3-avro, sent under every serial.
    body = fa.call_request(P, "append", {"event": {"headers": {}, "body": b"burst"}})
    c.conn.send_raw(b"".join(fa.Conn.frame(c.serial + 1 + k, [body]) for k in range(args.events)))
    ok = fa.call_response(P, "append", "OK")
    buf, pos, got = bytearray(), 0, 0
    while got < args.events:
        # Frames are parsed by offset: the answers can be many megabytes in one read.
        while True:
            if len(buf) - pos < 8:
                break
            serial, count = struct.unpack_from("!II", buf, pos)
            p, parts = pos + 8, []
            for _ in range(count):
                if len(buf) - p < 4:
                    break
                (n,) = struct.unpack_from("!I", buf, p)
                if len(buf) - p - 4 < n:
                    break
                parts.append(bytes(buf[p + 4:p + 4 + n]))
                p += 4 + n
            if len(parts) < count:
                break
            if serial != c.serial + 1 + got or b"".join(parts) != ok:
                sys.exit("flume_client: answer %d is not OK for serial %d" % (got, c.serial + 1 + got))
            got, pos = got + 1, p
        if got == args.events:
            break
        if pos > (1 << 20):
            del buf[:pos]
            pos = 0
        chunk = c.conn.sock.recv(1 << 16)
        if not chunk:
            sys.exit("flume_client: connection closed after %d answers" % got)
        buf += c.conn.inflate.decompress(chunk) if c.conn.inflate else chunk
    c.serial += args.events


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--compress", action="store_true")
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--expect")
    ap.add_argument("--text")
    ap.add_argument("--unknown-hash", action="store_true")
    ap.add_argument("--retry", action="store_true")
    ap.add_argument("--mode", default="send")
    ap.add_argument("--pause", type=float, default=0.0)
    args = ap.parse_args()
    if args.mode == "resilient":
        resilient(args)
        return
    c = Client(args)
    expect = open(args.expect, "a") if args.expect else None

    def send(events, single=False):
        while True:
            if single:
                status = c.call("append", {"event": events[0]})
            else:
                status = c.call("appendBatch", {"events": events})
            if status != "FAILED" or not args.retry:
                break
            print("FAILED", flush=True)  # as a Flume agent does: the same events again, later
            time.sleep(0.1)
        if status != "OK":
            sys.exit("flume_client: answer %s" % status)
        if expect:
            for ev in events:
                expect.write(describe(ev) + "\n")
            expect.flush()

    if args.mode == "text":
        sent = 0
        with open(args.text, "rb") as f:
            lines = [ln.rstrip(b"\n") for ln in f]
        for k in range(0, len(lines), args.batch):
            send([{"headers": {}, "body": b} for b in lines[k:k + args.batch]])
            sent += len(lines[k:k + args.batch])
        print("DONE", sent, flush=True)
        return

    i, calls, n = args.first, 0, args.first + args.events
    if args.mode in ("half", "malformed", "badframe"):
        n = args.first + min(args.events, args.batch)
    elif args.mode in ("burst", "toomany"):
        n = args.first + 1  # one call (the handshake) before the mode's own
    while i < n:
        if calls % 3 == 0:
            send([event(i)], single=True)
            i += 1
        else:
            m = min(args.batch, n - i)
            send([event(j) for j in range(i, i + m)])
            i += m
        calls += 1
    if args.mode == "half":
        body = c.request_bytes("appendBatch", {"events": [event(j) for j in range(n, n + 50)]})
        frame = fa.Conn.frame(c.serial + 1, [body])
        c.conn.send_raw(frame[: len(frame) // 2])
    elif args.mode == "malformed":
        # appendBatch, one event, no headers, a body of length -5 (zigzag 9).
        bad = b"\x00" + b"\x16appendBatch" + b"\x02" + b"\x00" + b"\x09" + b"xxxx" + b"\x00"
        c.conn.send_frame(c.serial + 1, [bad])
        try:
            c.conn.recv_frame()
            sys.exit("flume_client: the server answered a malformed request")
        except (EOFError, ConnectionError):
            pass
    elif args.mode == "burst":
        burst(c, args)
        i += args.events
    elif args.mode == "toomany":
        # One appendBatch of more empty events than a request may hold: tiny on the wire, large
        # in memory; the server must refuse it (close the connection) and store nothing.
        # Encoded by hand (python3-avro takes long for a million events), checked against
        # python3-avro's encoding of a small batch.
        def batch(n):
            return (b"\x00" + b"\x16appendBatch" + fa.zigzag(n) + b"\x00\x00" * n + b"\x00")
        if batch(3) != fa.call_request(P, "appendBatch", {"events": [{"headers": {}, "body": b""}] * 3}):
            sys.exit("flume_client: the hand encoding differs from python3-avro's")
        body = batch(args.events)
        c.conn.send_frame(c.serial + 1, [body])
        try:
            c.conn.recv_frame()
            sys.exit("flume_client: the server answered a request over its limit")
        except (EOFError, ConnectionError):
            pass
    elif args.mode == "badframe":
        # A frame header announcing 4294967280 buffers.
        c.conn.send_raw(bytes([0, 0, 0, c.serial + 1, 0xff, 0xff, 0xff, 0xf0]))
        try:
            c.conn.recv_frame()
            sys.exit("flume_client: the server answered a malformed frame")
        except (EOFError, ConnectionError):
            pass
    c.conn.close()
    print("DONE", i - args.first, flush=True)


if __name__ == "__main__":
    main()
