#!/usr/bin/env python3
"""Independent decoder of the dCMMS batch wire format (docs/specs/wire-format.md).

Written from the spec with the Python standard library only (zstd frames need
the `zstandard` package). Prints the batch as JSON on stdout; exits 2 with a
message on stderr for a malformed frame.

usage: decode_batch.py FRAME_FILE
"""
import json
import struct
import sys
import zlib

MAGIC = b"DCMB"
QUALITY = {0: "good", 1: "stale", 2: "comms_lost", 3: "bad"}
DROP_REASON = {0: "capacity", 1: "age", 2: "corrupt"}


class Malformed(Exception):
    pass


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n, what):
        if self.pos + n > len(self.buf):
            raise Malformed(f"truncated {what} at offset {self.pos}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def varint(self):
        value, shift = 0, 0
        for _ in range(10):
            (b,) = self.take(1, "varint")
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise Malformed("varint longer than 10 bytes")

    def string(self, what):
        n = self.varint()
        if n > 255:
            raise Malformed(f"{what} longer than 255 bytes")
        return self.take(n, what).decode("utf-8")


EVENT_KIND = {0: "raised", 1: "cleared"}


def unzigzag(v):
    return (v >> 1) ^ -(v & 1)


def wrap_i64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def decode(frame):
    if len(frame) < 20:
        raise Malformed("shorter than the 20-byte header")
    magic, version, compression, reserved, payload_len, raw_len, crc = struct.unpack(
        "<4sBBHIII", frame[:20])
    if magic != MAGIC:
        raise Malformed("bad magic")
    if version not in (2, 3):
        raise Malformed(f"unsupported version {version}")
    if reserved != 0:
        raise Malformed("reserved bytes not zero")
    payload = frame[20:]
    if len(payload) != payload_len:
        raise Malformed("payload length mismatch")
    if zlib.crc32(payload) != crc:
        raise Malformed("checksum mismatch")
    if compression == 1:
        import zstandard  # optional dependency, only for compressed frames
        payload = zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_len)
    elif compression != 0:
        raise Malformed(f"unknown compression {compression}")
    if len(payload) != raw_len:
        raise Malformed("decompressed length mismatch")
    r = Reader(payload)
    batch = {"gateway_id": r.string("gateway_id")}
    (batch["first_sequence"], batch["sequence"], batch["created_ms"],
     batch["polled_through_ms"]) = struct.unpack("<QQqq", r.take(32, "sequence header"))
    if batch["first_sequence"] > batch["sequence"]:
        raise Malformed("first_sequence above sequence")
    series = []
    for _ in range(r.varint()):
        s = {"device": r.string("device"), "point": r.string("point"), "unit": r.string("unit")}
        n = r.varint()
        if n == 0:
            raise Malformed("empty series")
        (ts,) = struct.unpack("<q", r.take(8, "first timestamp"))
        stamps, delta = [ts], 0
        for _ in range(n - 1):
            delta = wrap_i64(delta + unzigzag(r.varint()))
            ts = wrap_i64(ts + delta)
            stamps.append(ts)
        values, prev = [], 0
        for _ in range(n):
            (ctrl,) = r.take(1, "value control")
            lz, tz = ctrl >> 4, ctrl & 0x0F
            if lz + tz > 8 or (lz + tz == 8 and ctrl != 0x80):
                raise Malformed(f"bad value control byte {ctrl:#04x}")
            mid = r.take(8 - lz - tz, "value")
            prev ^= int.from_bytes(bytes(lz) + mid + bytes(tz), "big")
            (v,) = struct.unpack(">d", prev.to_bytes(8, "big"))
            values.append(v)
        quals = []
        for _ in range(r.varint()):
            (q,) = r.take(1, "quality")
            if q not in QUALITY:
                raise Malformed(f"unknown quality {q}")
            quals += [QUALITY[q]] * r.varint()
        if len(quals) != n:
            raise Malformed("quality runs do not add up")
        s["samples"] = [{"ts_ms": t, "value": v, "quality": q}
                        for t, v, q in zip(stamps, values, quals)]
        series.append(s)
    drops = []
    for _ in range(r.varint()):
        first, last, reason = struct.unpack("<QQB", r.take(17, "drop"))
        if reason not in DROP_REASON:
            raise Malformed(f"unknown drop reason {reason}")
        spans = []
        for _ in range(r.varint()):
            sp = {"device": r.string("device"), "point": r.string("point")}
            sp["from_ms"], sp["to_ms"] = struct.unpack("<qq", r.take(16, "span"))
            sp["samples"] = r.varint()
            spans.append(sp)
        drops.append({"first_sequence": first, "last_sequence": last,
                      "reason": DROP_REASON[reason], "spans": spans})
    events = []
    if version == 3:
        for _ in range(r.varint()):
            (kind,) = r.take(1, "event kind")
            if kind not in EVENT_KIND:
                raise Malformed(f"unknown event kind {kind}")
            e = {"kind": EVENT_KIND[kind], "asset": r.string("asset"),
                 "asset_class": r.string("asset_class"), "model_id": r.string("model_id"),
                 "model_version": r.string("model_version")}
            (e["ts_ms"], e["window_start_ms"], e["score"], e["raise_level"]) = struct.unpack(
                "<qqdd", r.take(32, "event times and score"))
            e["summary"] = r.string("summary")
            e["explanation"] = []
            for _ in range(r.varint()):
                c = {"feature": r.string("feature"), "unit": r.string("unit")}
                c["share"], c["value"], c["expected"] = struct.unpack("<ddd", r.take(24, "contribution"))
                c["text"] = r.string("text")
                e["explanation"].append(c)
            events.append(e)
    if r.pos != len(payload):
        raise Malformed("trailing bytes")
    batch["series"] = series
    batch["drops"] = drops
    batch["events"] = events
    return batch


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        frame = f.read()
    try:
        print(json.dumps(decode(frame)))
    except Malformed as e:
        print(f"{sys.argv[1]}: malformed batch: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
