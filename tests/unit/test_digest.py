from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from model_signing import hashing as oms_hashing

from slsa_dist.digest._cache import DigestCache
from slsa_dist.digest._manifest import digest_bytes, digest_path
from slsa_dist.errors import InputError


def _oms_root(path: Path, config: oms_hashing.Config) -> str:
    root = hashlib.sha256()
    for descriptor in config.hash(path).resource_descriptors():
        root.update(descriptor.digest.digest_value)
    return root.hexdigest()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(3_000_001))
    (root / "a.b").write_bytes(b"dot sorts before slash in bytes, not in path order")
    (root / "sub" / "x").write_bytes(b"x")
    (root / "sub" / "deep" / "empty").write_bytes(b"")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_bytes(b"ignored")
    (root / ".gitignore").write_bytes(b"ignored")
    return root


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_files_root_matches_model_signing(model: Path, algorithm: str) -> None:
    ours = digest_path(model, algorithm=algorithm)
    theirs = _oms_root(model, oms_hashing.Config().use_file_serialization(
        hashing_algorithm=algorithm))
    assert ours.root_digest == theirs
    assert [r.name for r in ours.resources] == ["a.b", "sub/deep/empty", "sub/x", "weights.bin"]


def test_shards_root_matches_model_signing(model: Path) -> None:
    ours = digest_path(model, method="shards", shard_size=1_000_000)
    theirs = _oms_root(model, oms_hashing.Config().use_shard_serialization(shard_size=1_000_000))
    assert ours.root_digest == theirs
    assert "weights.bin:3000000:3000001" in [r.name for r in ours.resources]


def test_single_file_matches_model_signing(model: Path) -> None:
    path = model / "weights.bin"
    ours = digest_path(path)
    assert ours.root_digest == _oms_root(path, oms_hashing.Config())
    assert ours.resources[0].digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_thread_count_does_not_change_the_result(model: Path) -> None:
    one = digest_path(model, method="shards", shard_size=100_000, max_workers=1)
    many = digest_path(model, method="shards", shard_size=100_000, max_workers=8)
    assert one == many


def test_sha512_and_buffers() -> None:
    assert digest_bytes(b"abc", "sha512") == hashlib.sha512(b"abc").hexdigest()


def test_tensor_digest_is_over_raw_bytes() -> None:
    torch = pytest.importorskip("torch")
    from slsa_dist.digest._manifest import digest_tensor

    tensor = torch.arange(6, dtype=torch.int32).reshape(2, 3).t()  # non-contiguous
    expected = hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()
    assert digest_tensor(tensor) == expected


# --- bad input ---------------------------------------------------------------------------


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="found nothing at that path"):
        digest_path(tmp_path / "nope")


def test_symlinks_are_refused_unless_allowed(model: Path) -> None:
    (model / "link").symlink_to(model / "sub" / "x")
    with pytest.raises(InputError, match=r"link: expected a regular file or directory, found a symlink"):
        digest_path(model)
    allowed = digest_path(model, allow_symlinks=True)
    assert "link" in [r.name for r in allowed.resources]


def test_symlinks_never_leave_the_root(model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"outside")
    (model / "escape").symlink_to(outside)
    with pytest.raises(InputError, match="outside the root"):
        digest_path(model, allow_symlinks=True)


def test_fifo_is_refused(model: Path) -> None:
    os.mkfifo(model / "pipe")
    with pytest.raises(InputError, match=r"pipe: expected a regular file or directory, found a fifo"):
        digest_path(model)


def test_unreadable_file_is_named(model: Path) -> None:
    (model / "sub" / "x").chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(InputError, match="sub/x"):
            digest_path(model)
        return
    # Root reads every file through CAP_DAC_OVERRIDE: digest in a child process that has
    # dropped the capabilities that bypass file permissions (util-linux setpriv).
    import shutil
    import subprocess
    import sys

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    caps = "-dac_override,-dac_read_search"
    code = ("import sys\nfrom slsa_dist.digest._manifest import digest_path\nfrom slsa_dist.errors import "
            "InputError\ntry:\n    digest_path(sys.argv[1])\nexcept InputError as exc:\n"
            "    print(exc)\n    sys.exit(3)\n")
    done = subprocess.run([setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}",
                           sys.executable, "-c", code, str(model)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stderr
    assert "sub/x: expected a readable file, found one without read access" in done.stdout


def test_file_changing_while_hashed_gives_no_digest(tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(b"\0" * (4 << 20))
    touched = threading.Event()

    def progress(done: int, total: int) -> None:
        if not touched.is_set():
            touched.set()
            with path.open("ab") as handle:
                handle.write(b"more")

    with pytest.raises(InputError, match="expected the file to stay unchanged while hashed"):
        digest_path(path, progress=progress)


# --- cache -------------------------------------------------------------------------------


def test_cache_skips_unchanged_files_and_misses_changed_ones(model: Path, tmp_path: Path) -> None:
    cache = DigestCache(path=tmp_path / "cache.sqlite")
    first = digest_path(model, cache=cache)
    assert (cache.hits, cache.misses) == (0, 4)
    second = digest_path(model, cache=cache)
    assert second == first
    assert cache.hits == 4
    (model / "sub" / "x").write_bytes(b"y")  # same size, new content, new mtime/ctime
    third = digest_path(model, cache=cache)
    assert cache.misses == 5
    assert third.root_digest != first.root_digest


def test_cache_from_another_machine_is_discarded(model: Path, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = DigestCache(path=path)
    digest_path(model, cache=cache)
    cache._db.execute("UPDATE meta SET value='other-machine' WHERE key='machine'")
    cache.close()
    reopened = DigestCache(path=path)
    digest_path(model, cache=reopened)
    assert reopened.hits == 0


def test_mmap_mode_gives_the_same_manifest(model: Path) -> None:
    for method in ("files", "shards"):
        plain = digest_path(model, method=method, shard_size=1_000_000)  # type: ignore[arg-type]
        mapped = digest_path(model, method=method, shard_size=1_000_000,  # type: ignore[arg-type]
                             use_mmap=True)
        assert plain == mapped


def test_a_manifest_difference_is_summarized_with_a_count_of_the_rest(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for i in range(13):
        (model / f"w{i:02d}.bin").write_bytes(b"%d" % i)
    expected = digest_path(model)
    assert expected.diff_summary(digest_path(model)) == ""
    (model / "w00.bin").write_bytes(b"changed")
    for i in range(1, 13):
        (model / f"w{i:02d}.bin").unlink()
    (model / "extra.bin").write_bytes(b"x")
    summary = digest_path(model).diff_summary(expected, shown=3)
    assert summary == "missing: w01.bin, missing: w02.bin, missing: w03.bin (+11 more)"
    assert digest_path(model).subject_digests == {digest_path(model).root_digest}
    single = digest_path(model / "extra.bin")
    assert single.subject_digests == {single.identity, single.root_digest}
    assert single.identity == hashlib.sha256(b"x").hexdigest()


def test_a_folder_digests_at_interpreter_exit(tmp_path: Path) -> None:
    """An atexit hook (the rank recording what it saved, under a callback that finishes
    at exit) got "cannot schedule new futures after interpreter shutdown"; the same
    manifest is computed in the calling thread then."""
    import subprocess
    import sys

    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(bytes([i]) * 1000)
    expected = digest_path(tmp_path).identity
    code = ("import atexit, sys; from slsa_dist.digest import digest_path; "
            "atexit.register(lambda: print(digest_path(sys.argv[1]).identity))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.stdout.strip() == expected, done.stderr[-2000:]
