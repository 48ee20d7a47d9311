"""``--engine dask``: the same manifest and canonical copies as a local run, on a local cluster and
on a scheduler with workers started here on loopback; a worker killed mid-run changes nothing;
a cluster left without workers ends the run with an error, not a hang."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dedup.config import Config
from dedup.errors import ConfigError, EngineError
from dedup.pipeline import run

distributed = pytest.importorskip("distributed")

SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "sample" / "docs"


def _shards(tmp: Path, n: int = 3) -> list[str]:
    """The sample as N gzip JSON Lines shards and a directory of the rest: several shards, two formats."""
    files = sorted(p for p in SAMPLE.rglob("*") if p.is_file())
    shards = []
    for k in range(n):
        shard = tmp / "shards" / f"part-{k:02d}.jsonl.gz"
        shard.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(shard, "wb") as fh:
            for f in files[k : len(files) // 2 : n]:
                record = {"id": f.relative_to(SAMPLE).as_posix(), "text": f.read_text()}
                fh.write(orjson.dumps(record) + b"\n")
        shards.append(str(shard))
    rest = tmp / "rest"
    rest.mkdir()
    for f in files[len(files) // 2 :]:
        (rest / f.relative_to(SAMPLE).as_posix().replace("/", "_")).write_bytes(f.read_bytes())
    return [*shards, str(rest)]


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("summary.json", ".lock")
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, bytes]]:
    tmp = tmp_path_factory.mktemp("dask-inputs")
    paths = _shards(tmp)
    run(paths, tmp / "local", Config(jobs=2), batch_size=8)
    expected = _outputs(tmp / "local")
    assert sum(1 for line in expected["manifest.jsonl"].splitlines()) == 269
    return paths, expected


def _start_cluster(tmp: Path, workers: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """``dask scheduler`` and ``dask worker``s (no nanny: a killed worker stays dead) on 127.0.0.1."""
    scheduler_file = tmp / "scheduler.json"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [
        subprocess.Popen(
            [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            **quiet,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = orjson.loads(scheduler_file.read_bytes())["address"]
        for _ in range(workers):
            procs.append(
                subprocess.Popen(
                    [str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                     "--no-dashboard", "--host", "127.0.0.1"],
                    **quiet,
                )
            )  # fmt: skip
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)
    except BaseException:
        _stop(procs)
        raise
    return address, procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def loopback_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    address, procs = _start_cluster(tmp_path_factory.mktemp("dask-cluster"), workers=2)
    try:
        yield address, procs[1:]
    finally:
        _stop(procs)


def test_local_cluster_gives_the_local_engines_outputs(
    inputs: tuple[list[str], dict[str, bytes]], tmp_path: Path
) -> None:
    paths, expected = inputs
    run(paths, tmp_path / "dask", Config(jobs=2, engine="dask"), batch_size=8)
    assert _outputs(tmp_path / "dask") == expected


def test_a_worker_killed_mid_run_changes_nothing(
    inputs: tuple[list[str], dict[str, bytes]], loopback_cluster: tuple[str, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:  # fmt: skip
    paths, expected = inputs
    address, workers = loopback_cluster
    killed: list[int] = []

    def kill_one_worker(stage: str, done: int, total: int | None) -> None:
        if stage == "read" and not killed:  # pass 1 has batches in flight on both workers
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            killed.append(done)

    config = Config(jobs=2, engine="dask", scheduler=address)
    run(paths, tmp_path / "dask", config, batch_size=8, progress=kill_one_worker)
    assert killed, "the worker was never killed"
    assert _outputs(tmp_path / "dask") == expected


def test_losing_every_worker_ends_the_run_with_an_error() -> None:
    from dedup.dask_workers import DaskWorkers

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        results = DaskWorkers(client).ordered(time.sleep, [0.5] * 20, window_per_worker=4)
        next(results)
        cluster.scale(0)  # the stage scattered to the workers goes with them
        with pytest.raises(EngineError, match="cancelled by Dask: the workers"):
            list(results)


def test_losing_the_scheduler_ends_the_run_with_an_error_not_a_hang(tmp_path: Path) -> None:
    from dedup.dask_workers import DaskWorkers

    address, procs = _start_cluster(tmp_path, workers=1)
    try:
        with distributed.Client(address, timeout=30) as client:
            results = DaskWorkers(client, workerless_s=2).ordered(time.sleep, [0.5] * 20, window_per_worker=4)
            next(results)
            procs[0].kill()
            started = time.monotonic()
            with pytest.raises(EngineError, match=r"cancelled by Dask|no Dask worker"):
                list(results)
            assert time.monotonic() - started < 30
    finally:
        _stop(procs)


def test_engine_options_are_checked_up_front() -> None:
    with pytest.raises(ConfigError, match="--scheduler needs --engine dask"):
        Config(scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="cron mode"):
        Config(engine="dask", state="/tmp/state")
    with pytest.raises(ConfigError, match="--engine must be one of"):
        Config(engine="spark")


def test_an_unreachable_scheduler_is_one_error(tmp_path: Path) -> None:
    import dask

    config = Config(jobs=1, engine="dask", scheduler="tcp://127.0.0.1:9")  # discard port: nothing listens
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(EngineError, match="cannot start or reach"),
    ):
        run([str(SAMPLE)], tmp_path / "out", config)
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(children - found)
            found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_killing_the_run_stops_its_local_clusters_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "dedup", "run", str(SAMPLE), "--out", str(tmp_path / "out"), "-q",
           "--engine", "dask", "--jobs", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.monotonic() + 60, set()
        while time.monotonic() < deadline and proc.poll() is None:
            workers = {p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p)}
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert len(workers) >= 2, "the local cluster's workers never started"
        everything = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in everything):
            time.sleep(0.2)
        assert not [p for p in everything if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class SlowToSend:
    """A task result that takes longer to serialise than the engine's poll: a big shard's, in small."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        with open(self.log, "a") as fh:
            fh.write("packed\n")
        time.sleep(0.3)
        return bytes, (b"done",)


def test_a_result_slower_to_send_than_a_poll_is_sent_once(tmp_path: Path) -> None:
    """It was fetched with the poll's timeout: each timeout dropped the transfer and asked again, for ever."""
    import threading

    from dedup.dask_workers import DaskWorkers

    log = tmp_path / "packs.log"
    got: list[object] = []
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        engine = DaskWorkers(client, poll_s=0.05)
        consumer = threading.Thread(
            target=lambda: got.extend(engine.ordered(SlowToSend, [str(log)] * 3, window_per_worker=4)),
            daemon=True,
        )
        consumer.start()
        consumer.join(timeout=60)
        assert not consumer.is_alive(), "the results never arrived"
    assert got == [b"done"] * 3
    assert log.read_text().count("packed") == 3


def test_the_driver_keeps_no_log_of_the_tasks_it_sent() -> None:
    """Dask's link to the scheduler logged its last 1,000 batches of messages, pass 1's tasks and
    their paths with them: ~35 MB of a long run's driver."""
    from dedup.dask_workers import connect

    with connect(Config(engine="dask", jobs=1)) as engine:
        batches = [[f"{k:0100d}" for k in range(64)] for _ in range(40)]
        assert list(engine.ordered(len, iter(batches), window_per_worker=2)) == [64] * 40
        assert len(engine.client.scheduler_comm.recent_message_log) == 0
