"""Image dimensions read from a file's header, before anything is decoded.

OpenCV allocates the whole decoded image before it can say how big it is, so ``imageio.decode_rgb``
first reads width, height and sample depth here (JPEG SOF, PNG IHDR, GIF, BMP, WebP, TIFF first
directory, classic and BigTIFF) and refuses or reduces a huge photo before any pixel is decoded.
Pure byte parsing: anything malformed gives None, never an exception.
"""

from __future__ import annotations

import struct


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF marker, walking segment lengths (no pixel data read)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return (w, h) if w and h else None
        i += 2 + length
    return None


def _tiff_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, bytes per sample) of a TIFF's first page, the one OpenCV decodes.

    The first directory may sit anywhere in the file (often at its end); the whole file is in
    memory already (read with a size cap), so it is walked here. Classic and BigTIFF, both byte
    orders. Only the three tags needed are read; anything malformed gives None.
    """
    end = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack(end + "H", data[2:4])
    if version == 42:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        count_fmt, entry_size, value_at, offset_fmt = "H", 12, 8, "I"
    elif version == 43:
        (ifd,) = struct.unpack(end + "Q", data[8:16])
        count_fmt, entry_size, value_at, offset_fmt = "Q", 20, 12, "Q"
    else:
        return None
    count_len = struct.calcsize(count_fmt)
    inline = struct.calcsize(offset_fmt)
    (entries,) = struct.unpack(end + count_fmt, data[ifd : ifd + count_len])
    # SHORT, LONG, LONG8: the only types these tags may have.
    sizes = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}
    tags: dict[int, int] = {}
    for k in range(min(entries, 4096)):
        e = ifd + count_len + k * entry_size
        tag, typ = struct.unpack(end + "HH", data[e : e + 4])
        if tag not in (256, 257, 258) or typ not in sizes:
            continue
        fmt, size = sizes[typ]
        (n,) = struct.unpack(end + offset_fmt, data[e + 4 : e + 4 + inline])
        where = e + value_at
        if n * size > inline:  # stored elsewhere: the value field is an offset
            (where,) = struct.unpack(end + offset_fmt, data[where : where + inline])
        (tags[tag],) = struct.unpack(end + fmt, data[where : where + size])
    if 256 not in tags or 257 not in tags:
        return None
    return tags[256], tags[257], max(1, -(-tags.get(258, 8) // 8))


def header_info(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, bytes per sample) from the header, or None (unknown format, bad header)."""
    try:
        if data[:3] == b"\xff\xd8\xff":
            size = _jpeg_size(data)
            return None if size is None else (*size, 1)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h, 2 if data[24] == 16 else 1
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return w, h, 1
        if data[:2] == b"BM" and len(data) >= 26:
            (dib,) = struct.unpack("<I", data[14:18])
            if dib >= 40:
                w, h = struct.unpack("<ii", data[18:26])
                return abs(w), abs(h), 1
            if dib == 12:
                w, h = struct.unpack("<HH", data[18:22])
                return w, h, 1
            return None
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h, 1
            if chunk == b"VP8L" and data[20] == 0x2F:
                (bits,) = struct.unpack("<I", data[21:25])
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF, 1
            return None
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_header(data)
    except (struct.error, IndexError):
        return None
    return None


def is_known_format(data: bytes) -> bool:
    """Whether the bytes start like one of the formats whose header ``header_size`` reads."""
    return (
        data[:3] == b"\xff\xd8\xff"
        or data[:8] == b"\x89PNG\r\n\x1a\n"
        or data[:6] in (b"GIF87a", b"GIF89a")
        or data[:2] == b"BM"
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        or data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    )


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored in the file header, or None when it cannot be read.

    JPEG (SOF), PNG (IHDR), GIF, BMP, WebP and TIFF (first directory, classic and BigTIFF): the
    formats Peel decodes. This lets ``decode_rgb`` refuse (or decode reduced) a huge image
    before OpenCV allocates it: a 600 KB deflate TIFF of 20000 x 20000 took 2.9 GB to decode.
    """
    info = header_info(data)
    return None if info is None else (info[0], info[1])
