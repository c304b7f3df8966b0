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


# --- MMLU, fetched like the data ---------------------------------------------------------------

from conftest import REPO  # noqa: E402
from culturespa.fetch import MMLU_BASE_URL, MMLU_CHECKSUM_FILE, ensure_file  # noqa: E402

MMLU_MIRROR = REPO.parent / "shared" / "benchmarks" / "mmlu"


@pytest.fixture
def mmlu_mirror():
    if not (MMLU_MIRROR / "mmlu.zip").is_file():
        pytest.skip(f"no MMLU mirror at {MMLU_MIRROR}")
    return MMLU_MIRROR


def test_mmlu_is_pinned_to_the_authors_commit():
    sums = read_checksums(MMLU_CHECKSUM_FILE)
    assert set(sums) == {"mmlu.zip", "mapping.json"}
    assert "/4e128c910953a4cc59cde2550d711f832a82b992/LLaMA-Factory/evaluation/mmlu" in MMLU_BASE_URL


def test_mmlu_from_the_mirror_lands_in_resources_verified(mmlu_mirror, tmp_path):
    config = {"mmlu_mirror": str(mmlu_mirror), "mmlu_base_url": "http://unused"}
    for rel in ("mmlu.zip", "mapping.json"):
        dest = ensure_file("mmlu", rel, config, tmp_path)
        assert dest == tmp_path / "resources/mmlu" / rel
        assert sha256_of(dest) == read_checksums(MMLU_CHECKSUM_FILE)[rel]
    # a file changed after it was verified is named, not used
    dest = tmp_path / "resources/mmlu/mapping.json"
    dest.write_text(dest.read_text().replace("STEM", "Stem", 1))
    with pytest.raises(ChecksumError, match="mapping.json.*changed after it was fetched"):
        ensure_file("mmlu", "mapping.json", config, tmp_path)


def test_corrupted_mmlu_mirror_is_refused(mmlu_mirror, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(mmlu_mirror / "mapping.json", bad / "mapping.json")
    (bad / "mmlu.zip").write_bytes((mmlu_mirror / "mmlu.zip").read_bytes()[:-10])
    with pytest.raises(ChecksumError, match="mmlu.zip: checksum mismatch"):
        ensure_file("mmlu", "mmlu.zip", {"mmlu_mirror": str(bad)}, tmp_path / "work")
    assert not (tmp_path / "work/resources/mmlu/mmlu.zip").exists()
