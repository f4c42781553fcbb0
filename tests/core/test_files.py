import ast
import threading

import numpy as np
import pytest

from retrievekit.core.files import AST_LOCK, fsync_write_array, load_array, read_npy

ARRAYS = {
    "uint32": np.arange(9, dtype=np.uint32),
    "empty-2d": np.zeros((0, 4), np.float32),
    "fortran": np.asfortranarray(np.random.default_rng(0).random((300, 70))),
    "float16": np.random.default_rng(1).random((5, 3)).astype(np.float16),
    "scalar": np.array(3.5),
}


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("mmap", [False, True])
def test_read_npy_gives_back_what_numpy_saved(tmp_path, name, mmap):
    array = ARRAYS[name]
    np.save(tmp_path / "a.npy", array)
    got = read_npy(tmp_path / "a.npy", mmap=mmap)
    assert type(got) is np.ndarray
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    np.testing.assert_array_equal(load_array(tmp_path / "a.npy"), array)


@pytest.mark.parametrize("mmap", [False, True])
def test_a_truncated_file_is_an_error_that_says_so(tmp_path, mmap):
    np.save(tmp_path / "a.npy", np.arange(15, dtype=np.float64))
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(raw[:-12])
    with pytest.raises(ValueError, match=r"a\.npy: truncated: its header promises 15 values, the file holds 13"):
        read_npy(tmp_path / "a.npy", mmap=mmap)


def test_objects_and_foreign_files_are_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="holds Python objects"):
        read_npy(tmp_path / "o.npy")
    (tmp_path / "x.npy").write_bytes(b"not an array at all")
    with pytest.raises(ValueError):
        read_npy(tmp_path / "x.npy")


def test_concurrent_readers_and_parsers_all_succeed(tmp_path):
    # Threads building ASTs at once broke CPython 3.11's AST constructor ("recursion depth mismatch"): segment
    # readers opening .npy files from several threads hit it. Every reader here must get its array back.
    fsync_write_array(tmp_path / "a.npy", np.arange(9, dtype=np.uint32))
    source = "def f(x):\n    return [y for y in range(x) if y % 2]\n" * 20
    errors: list[BaseException] = []

    def work(parse: bool) -> None:
        try:
            for _ in range(300):
                if parse:
                    with AST_LOCK:
                        ast.parse(source)
                else:
                    assert read_npy(tmp_path / "a.npy").sum() == 36
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
