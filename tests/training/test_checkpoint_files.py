"""Reading a remote Ray Train checkpoint while another worker of the node cleans up."""

import shutil
import threading
import time

import pyarrow.fs
from ray.air._internal.filelock import TempFileLock
from ray.train import Checkpoint

from instructmix.training.loop import checkpoint_files


def _remote_checkpoint(tmp_path) -> Checkpoint:
    (tmp_path / "store" / "checkpoint_000002").mkdir(parents=True)
    (tmp_path / "store" / "checkpoint_000002" / "state.json").write_text('{"step": 2}')
    # not a LocalFileSystem, so Ray downloads it as it does one in a bucket
    remote = pyarrow.fs.SubTreeFileSystem(str(tmp_path / "store"), pyarrow.fs.LocalFileSystem())
    return Checkpoint("checkpoint_000002", filesystem=remote)


def test_a_worker_reads_its_checkpoint_while_another_deletes_the_shared_temp_folder(tmp_path):
    ckpt = _remote_checkpoint(tmp_path)
    shared = ckpt._get_temporary_checkpoint_dir()  # the folder all workers of a node share
    held = threading.Event()

    def other_worker_cleaning_up():  # what `as_directory` does on leaving it, in another worker
        with TempFileLock(shared, timeout=0):
            held.set()
            time.sleep(1.0)
            shutil.rmtree(shared, ignore_errors=True)

    other = threading.Thread(target=other_worker_cleaning_up)
    other.start()
    held.wait(10)
    try:
        # Ray's own `ckpt.as_directory()` raises "Checkpoint directory ... does not exist" here
        with checkpoint_files(ckpt) as d:
            assert d != shared
            assert open(f"{d}/state.json").read() == '{"step": 2}'
    finally:
        other.join()


def test_a_local_checkpoint_is_read_in_place(tmp_path):
    (tmp_path / "c").mkdir()
    with checkpoint_files(Checkpoint(str(tmp_path / "c"))) as d:
        assert d == str(tmp_path / "c")
