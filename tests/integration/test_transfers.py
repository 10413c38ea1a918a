"""A 1 GiB download and a 100 MiB upload streamed through every set-up,
with each hostgate-fcgi process's peak RSS (VmHWM) under 32 MiB: the
gateway must stream, never hold a body.

These run on all five set-ups: on 2 cores each set-up needs some 10-20 s,
which keeps the whole run within its 10 minutes. (Under SANITIZE=1 the RSS
bound is not checked: ASan's shadow memory alone exceeds it.)"""

import hashlib
import os
import uuid
import zlib

import pytest

from harness import PeakRssSampler, generated_blocks, sanitized_build, sha256_file
from servers import BIG_FILE_SIZE, BIG_UPLOAD_SIZE, make_big_file

RSS_LIMIT_KIB = 32 * 1024


def crc32_file(path):
    crc = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                return crc
            crc = zlib.crc32(b, crc)


@pytest.fixture(scope="session")
def big_file(nginx):
    # CRC-32 rather than SHA-256 for the 1 GiB: several times faster, and
    # with a distinct marker every 64 MiB it still catches lost, repeated
    # or reordered data
    path = os.path.join(nginx.files, "big.bin")
    make_big_file(path, BIG_FILE_SIZE)
    return path, crc32_file(path)


def check_rss(gw, sampler, binary):
    assert sampler.peaks, "no hostgate-fcgi process was seen during the transfer"
    print("%s: hostgate-fcgi peak RSS KiB by pid: %r" % (gw.setup, sampler.peaks))
    if sanitized_build(binary):
        return
    over = {pid: kib for pid, kib in sampler.peaks.items() if kib >= RSS_LIMIT_KIB}
    assert not over, "hostgate-fcgi peak RSS (KiB) over %d KiB: %r" % (RSS_LIMIT_KIB, over)


def test_1gib_download_streamed(gw, big_file, binary):
    path, crc = big_file
    got = [0, 0]    # bytes, crc

    def sink(chunk):
        got[0] += len(chunk)
        got[1] = zlib.crc32(chunk, got[1])
    with PeakRssSampler(gw.bin) as sampler:
        r = gw.get("/api/files/big.bin", sink=sink, timeout=120)
    assert r.status == 200, r
    assert got[0] == BIG_FILE_SIZE
    assert got[1] == crc
    check_rss(gw, sampler, binary)


def test_100mib_upload_streamed(gw, nginx, binary):
    name = "up-%s.bin" % uuid.uuid4().hex[:12]
    digest = hashlib.sha256()

    def body():
        for b in generated_blocks(BIG_UPLOAD_SIZE):
            digest.update(b)
            yield b
    with PeakRssSampler(gw.bin) as sampler:
        r = gw.request("PUT", "/api/upload/%s" % name, body=body(), timeout=120,
                       headers=[("Content-Length", str(BIG_UPLOAD_SIZE))])
    assert r.status == 201, r
    stored = os.path.join(nginx.dav, "upload", name)
    assert os.path.getsize(stored) == BIG_UPLOAD_SIZE
    assert sha256_file(stored) == digest.hexdigest()
    os.unlink(stored)
    check_rss(gw, sampler, binary)
