import functools
import http.server
import shutil
import threading

import pytest

from culturespa.errors import ChecksumError, DataFileError
from culturespa.fetch import materialise, read_checksums, sha256_of

CHECKSUMS = read_checksums()


@pytest.fixture
def http_mirror(data_dir):
    """A loopback HTTP server serving the data directory laid out like the upstream repository."""
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(data_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pinned_checksums_cover_the_release():
    assert len(CHECKSUMS) == 41
    assert "data/wvs_questions.json" in CHECKSUMS
    assert all(len(d) == 64 for d in CHECKSUMS.values())


def test_mirror_copy_verifies(data_dir, tmp_path):
    rel = "data/wvs_questions.json"
    dest = tmp_path / rel
    assert materialise(rel, dest, CHECKSUMS[rel], data_dir, "http://unused") .startswith("mirror")
    assert sha256_of(dest) == CHECKSUMS[rel]


def test_corrupted_mirror_file_fails_and_leaves_nothing(data_dir, tmp_path):
    mirror = tmp_path / "mirror"
    rel = "data/country_similarity.json"
    (mirror / "data").mkdir(parents=True)
    shutil.copy(data_dir / rel, mirror / rel)
    with open(mirror / rel, "r+b") as fh:  # flip one byte
        fh.seek(10)
        byte = fh.read(1)
        fh.seek(10)
        fh.write(bytes([byte[0] ^ 1]))
    dest = tmp_path / "out" / rel
    with pytest.raises(ChecksumError) as err:
        materialise(rel, dest, CHECKSUMS[rel], mirror, "http://unused")
    msg = str(err.value)
    assert rel in msg and CHECKSUMS[rel] in msg and sha256_of(mirror / rel) in msg
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary left either


def test_missing_mirror_file(tmp_path):
    rel = "data/wvs_questions.json"
    with pytest.raises(DataFileError, match="missing from the data mirror"):
        materialise(rel, tmp_path / rel, CHECKSUMS[rel], tmp_path, "http://unused")
    assert not (tmp_path / rel).exists()


def test_download_every_file_from_loopback_server(http_mirror, tmp_path):
    for rel, digest in CHECKSUMS.items():
        source = materialise(rel, tmp_path / rel, digest, None, http_mirror)
        assert source.startswith("http://127.0.0.1")
        assert sha256_of(tmp_path / rel) == digest


def test_download_of_a_missing_file_fails_cleanly(http_mirror, tmp_path):
    rel = "data/not_there.json"
    with pytest.raises(DataFileError, match="download .* failed"):
        materialise(rel, tmp_path / rel, "0" * 64, None, http_mirror)
    assert not (tmp_path / rel).exists()
