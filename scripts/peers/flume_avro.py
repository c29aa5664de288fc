"""flume_avro: what the Flume test peers share: the two Avro protocols (Flume's
AvroSourceProtocol, Spark's SparkFlumeProtocol), Avro's Netty transport framing, and the
Avro RPC handshake and call encoding, done with python3-avro (avro.protocol, avro.io and the
handshake schemas of avro.ipc). Debian's python3-avro: run the peers with /usr/bin/python3."""
import io
import socket
import struct
import zlib

import avro.io
import avro.ipc
import avro.protocol

SOURCE_PROTOCOL = avro.protocol.parse("""{
  "protocol": "AvroSourceProtocol", "namespace": "org.apache.flume.source.avro",
  "types": [
    {"type": "enum", "name": "Status", "symbols": ["OK", "FAILED", "UNKNOWN"]},
    {"type": "record", "name": "AvroFlumeEvent", "fields": [
      {"name": "headers", "type": {"type": "map", "values": "string"}},
      {"name": "body", "type": "bytes"}]}],
  "messages": {
    "append": {"request": [{"name": "event", "type": "AvroFlumeEvent"}], "response": "Status"},
    "appendBatch": {"request": [{"name": "events", "type": {"type": "array", "items": "AvroFlumeEvent"}}],
                    "response": "Status"}}}""")

SINK_PROTOCOL = avro.protocol.parse("""{
  "protocol": "SparkFlumeProtocol", "namespace": "org.apache.spark.streaming.flume.sink",
  "types": [
    {"type": "record", "name": "SparkSinkEvent", "fields": [
      {"name": "headers", "type": {"type": "map", "values": "string"}},
      {"name": "body", "type": "bytes"}]},
    {"type": "record", "name": "EventBatch", "fields": [
      {"name": "errorMsg", "type": "string", "default": ""},
      {"name": "sequenceNumber", "type": "string"},
      {"name": "events", "type": {"type": "array", "items": "SparkSinkEvent"}}]}],
  "messages": {
    "getEventBatch": {"request": [{"name": "n", "type": "int"}], "response": "EventBatch"},
    "ack": {"request": [{"name": "sequenceNumber", "type": "string"}], "response": "null"},
    "nack": {"request": [{"name": "sequenceNumber", "type": "string"}], "response": "null"}}}""")

MATCH = ("BOTH", "CLIENT", "NONE")


class Conn:
    """One TCP connection speaking Avro's Netty framing: each frame is a 4-byte big-endian
    serial, a 4-byte big-endian buffer count, then per buffer its 4-byte length and bytes.
    With compress, the stream both ways is zlib (as Flume's NettyServer with compression),
    each write ending with a sync flush."""

    def __init__(self, sock, compress=False):
        self.sock = sock
        self.buf = b""
        self.deflate = zlib.compressobj(6) if compress else None
        self.inflate = zlib.decompressobj() if compress else None

    @classmethod
    def connect(cls, host, port, compress=False):
        return cls(socket.create_connection((host, port), timeout=60), compress)

    def send_raw(self, data):
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by the peer")
            if self.inflate:
                chunk = self.inflate.decompress(chunk)
            self.buf += chunk

    def _take(self, n):
        self._fill(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    @staticmethod
    def frame(serial, buffers):
        out = [struct.pack("!II", serial, len(buffers))]
        for b in buffers:
            out.append(struct.pack("!I", len(b)))
            out.append(b)
        return b"".join(out)

    def send_frame(self, serial, buffers):
        self.send_raw(self.frame(serial, buffers))

    def recv_frame(self):
        """(serial, the buffers joined), or raises EOFError."""
        serial, count = struct.unpack("!II", self._take(8))
        parts = []
        for _ in range(count):
            (n,) = struct.unpack("!I", self._take(4))
            parts.append(self._take(n))
        return serial, b"".join(parts)

    def close(self):
        self.sock.close()


def zigzag(n):
    """Avro's encoding of a long (zigzag, then base-128 varint)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def encode(schema, datum):
    out = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(out))
    return out.getvalue()


def handshake_request(protocol, send_protocol=False, server_hash=None):
    return encode(avro.ipc.HANDSHAKE_REQUEST_SCHEMA, {
        "clientHash": protocol.md5,
        "clientProtocol": str(protocol) if send_protocol else None,
        "serverHash": server_hash or protocol.md5,
        "meta": None})


def handshake_response(match, protocol=None):
    return encode(avro.ipc.HANDSHAKE_RESPONSE_SCHEMA, {
        "match": match,
        "serverProtocol": str(protocol) if protocol else None,
        "serverHash": protocol.md5 if protocol else None,
        "meta": None})


def call_request(protocol, name, params):
    """The call part of a request: metadata, message name, parameters."""
    msg = protocol.messages[name]
    out = io.BytesIO()
    enc = avro.io.BinaryEncoder(out)
    avro.ipc.META_WRITER.write({}, enc)
    enc.write_utf8(name)
    avro.io.DatumWriter(msg.request).write(params, enc)
    return out.getvalue()


class Decoder:
    """Reads the parts of a request or response body in turn."""

    def __init__(self, data):
        self.stream = io.BytesIO(data)
        self.dec = avro.io.BinaryDecoder(self.stream)

    def read(self, schema):
        return avro.io.DatumReader(schema).read(self.dec)

    def handshake_request(self):
        return self.read(avro.ipc.HANDSHAKE_REQUEST_SCHEMA)

    def handshake_response(self):
        return self.read(avro.ipc.HANDSHAKE_RESPONSE_SCHEMA)

    def call_request(self, protocol):
        """(message name, parameters) of a call."""
        self.read(avro.ipc.META_SCHEMA)
        name = self.dec.read_utf8()
        if name == "":
            return "", None
        return name, self.read(protocol.messages[name].request)

    def call_response(self, protocol, name):
        """The response datum of message `name`; raises RuntimeError for an error response."""
        self.read(avro.ipc.META_SCHEMA)
        if self.dec.read_boolean():
            raise RuntimeError("error response: %r" % (self.read(avro.ipc.SYSTEM_ERROR_SCHEMA),))
        return self.read(protocol.messages[name].response)

    def at_end(self):
        return self.stream.tell() == len(self.stream.getvalue())


def call_response(protocol, name, datum):
    out = io.BytesIO()
    enc = avro.io.BinaryEncoder(out)
    avro.ipc.META_WRITER.write({}, enc)
    enc.write_boolean(False)
    avro.io.DatumWriter(protocol.messages[name].response).write(datum, enc)
    return out.getvalue()


if __name__ == "__main__":
    # Prints the protocols as python3-avro renders them (the texts whose MD5 is the hash).
    import sys
    p = SOURCE_PROTOCOL if sys.argv[1:] == ["source"] else SINK_PROTOCOL
    sys.stdout.write(str(p))
