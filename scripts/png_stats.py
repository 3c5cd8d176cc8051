#!/usr/bin/env python3
"""Checks a PNG screenshot is not blank: decodes it with the standard library only (8-bit
RGB/RGBA, the five PNG filters) and requires enough non-background pixels and colours.
Usage: png_stats.py FILE.png [min_nonwhite_fraction]"""
import struct, sys, zlib

def decode(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"unsupported PNG: depth {depth}, colour type {ctype}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return width, height, bpp, rows

w, h, bpp, rows = decode(sys.argv[1])
need = float(sys.argv[2]) if len(sys.argv) > 2 else 0.02
colours, busy = set(), 0
for r in rows:
    for x in range(0, len(r), bpp):
        px = r[x:x + 3]
        colours.add(px)
        if px[0] < 240 or px[1] < 240 or px[2] < 240:
            busy += 1
frac = busy / (w * h)
print(f"{w}x{h}, {len(colours)} colours, {frac:.3%} of pixels not near-white")
sys.exit(0 if frac >= need and len(colours) >= 8 else 1)
