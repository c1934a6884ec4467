"""`rawback batch` across every process of a torchrun job: one folder, sharded over all of them.

    torchrun --nnodes N --nproc-per-node G -m rawback batch photos/ -o out/

Each process converts `batch.shard(plan, RANK, WORLD_SIZE)` of the same sorted plan, so the
assignment is fixed by the folder alone and a re-run resumes (finished DNGs are skipped, as in
any batch). Only rank 0 draws: the other ranks send it each finished photo through the job's
key-value store (the c10d TCPStore torchrun already runs), which rank 0 reads between its own
photos and while it waits for the others at the end. Nothing in the store is needed for the
result: the final counts are an all_reduce of every rank's own Summary, so a lost message could
only delay a progress line.

No collective blocks while the ranks work at different speeds (one rank may get the large
photos): a rank that finishes early waits on the store, not in a collective with a timeout. The
process group (gloo on the CPU, NCCL on CUDA) is used at the start (every rank must see the same
plan) and at the end (the totals, then a barrier so that no rank exits before rank 0 has printed
the summary: torchrun stops the whole job when one process exits with an error).

torch is imported only when a group is joined: `torchrun_world` is cheap for the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rawback.batch import Job, Outcome, Status, Summary, run_jobs, shard
from rawback.camera import ProfileSource
from rawback.convert import ConvertOptions, ConvertResult
from rawback.errors import UsageError
from rawback.inverse import NeutralSource

POLL_SECONDS = 0.25  # how often rank 0 reads the store while it converts, at most
WAIT_SECONDS = 0.1  # and while it waits for the other ranks
LEAVE_SECONDS = 30.0  # at most, for the other ranks to leave the group before rank 0 does
# The numeric fields of Summary, all_reduced (summed) at the end; wall_seconds is rank 0's own.
SUMMED = ("converted", "skipped", "planned", "failed", "with_warnings", "megapixels", "seconds", "not_run",
          "generic_camera", "daylight")  # fmt: skip


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job (the environment torchrun sets for each worker)."""

    rank: int  # RANK: 0 .. size - 1 over all nodes
    local_rank: int  # LOCAL_RANK: the process's index on its node, its GPU's number
    size: int  # WORLD_SIZE: processes over all nodes
    attempt: int = 0  # TORCHELASTIC_RESTART_COUNT: a restarted job must not read the last one's keys

    @property
    def leader(self) -> bool:
        return self.rank == 0


def torchrun_world(environ: Mapping[str, str] = os.environ) -> World | None:
    """The World of a process that torchrun started with WORLD_SIZE > 1, else None (a single
    process, or a job of one, runs as an ordinary batch)."""
    if "WORLD_SIZE" not in environ:
        return None
    try:
        values = [int(environ.get(name, "0")) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")]
        attempt = int(environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        raise UsageError("RANK, LOCAL_RANK and WORLD_SIZE must be integers (torchrun sets them)") from None
    rank, local_rank, size = values
    if not (0 <= rank < size and local_rank >= 0):
        raise UsageError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={size}")
    return World(rank, local_rank, size, attempt) if size > 1 else None


def device_for(world: World, device: str) -> str:
    """`--device` of one process of the job: `auto` (with a GPU) and `cuda` mean this process's
    GPU, cuda:LOCAL_RANK; anything else is kept as given."""
    import torch

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return f"cuda:{world.local_rank}"
    return device


def group_device(device: str, method: str) -> str:
    """Where the group's collectives run: this process's GPU when the model runs on one that is
    there (NCCL), else the CPU (Gloo); a GPU that is missing is left to `batch.check_options` to
    report, after the processes have joined."""
    import torch

    # Read from the text: torch.device keeps the index in 8 bits (cuda:999 is cuda:-25).
    index = int(device.partition(":")[2]) if device.startswith("cuda:") else None
    if method == "diffusion" and index is not None and index < torch.cuda.device_count():
        return device
    return "cpu"


def plan_digest(jobs: Sequence[Job]) -> str:
    """What every rank must agree on before sharding: the plan, as a digest."""
    digest = hashlib.sha256()
    for job in jobs:
        digest.update(f"{job.source}\t{job.output}\t{job.problem or ''}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# --- one finished photo, as rank 0 is told of it -------------------------------------------------


def outcome_to_json(outcome: Outcome) -> str:
    result = outcome.result
    record = {
        "source": str(outcome.job.source),
        "output": str(outcome.job.output),
        "problem": outcome.job.problem,
        "status": outcome.status.value,
        "error": outcome.error,
        "traceback": outcome.traceback,
        "disk_full": outcome.disk_full,
        "result": None,
    }
    if result is not None:
        record["result"] = {
            "profile": result.profile,
            "megapixels": result.megapixels,
            "seconds": result.seconds,
            "notes": list(result.notes),
            "warnings": list(result.warnings),
            "camera_source": result.camera_source.value if result.camera_source else None,
            "white_balance_source": result.white_balance_source.value
            if result.white_balance_source
            else None,
        }
    return json.dumps(record)  # ASCII: a name that is not valid UTF-8 travels as \udcxx escapes


def outcome_from_json(text: str) -> Outcome:
    record = json.loads(text)
    job = Job(Path(record["source"]), Path(record["output"]), record["problem"])
    result = None
    if (r := record["result"]) is not None:
        result = ConvertResult(
            source=job.source,
            output=job.output,
            profile=r["profile"],
            megapixels=r["megapixels"],
            seconds=r["seconds"],
            notes=tuple(r["notes"]),
            warnings=tuple(r["warnings"]),
            camera_source=ProfileSource(r["camera_source"]) if r["camera_source"] else None,
            white_balance_source=(
                NeutralSource(r["white_balance_source"]) if r["white_balance_source"] else None
            ),
        )
    return Outcome(job, Status(record["status"]), result, record["error"], record["traceback"],
                   record["disk_full"])  # fmt: skip


# --- the group -----------------------------------------------------------------------------------


class Group:
    """The job's process group, joined on entry and destroyed on exit, and the key-value store
    through which the ranks tell rank 0 of their photos. Keys, under `rawback-batch/ATTEMPT/`:
    `R/count` (photos rank R has posted), `R/N` (its N-th outcome, deleted once read), `R/done`
    (it has finished its shard), `collected` (rank 0 has read everything) and `left` (how many
    ranks have left the group)."""

    def __init__(self, world: World, device: str = "cpu") -> None:
        import torch

        self.world = world
        self.device = torch.device(device if device.startswith("cuda") else "cpu")
        self.posted = 0  # outcomes this rank has posted
        self.read = dict.fromkeys(range(1, world.size), 0)  # rank 0: outcomes read, per rank
        self.store = None
        self._last_poll = 0.0

    def __enter__(self) -> Group:
        import torch
        import torch.distributed as dist

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        # The rendezvous store torchrun (or rank 0's process group) serves at MASTER_ADDR:MASTER_PORT;
        # a client of our own, under our prefix, is the public way to share it.
        client = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
            timeout=datetime.timedelta(minutes=5),
        )  # fmt: skip
        self.store = dist.PrefixStore(f"rawback-batch/{self.world.attempt}/", client)
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc_info: object) -> None:
        """Leave the group. Rank 0 leaves last (after a clean run): when it exits with a failure
        status, torchrun stops every process still running, and one in its interpreter's
        teardown would be reported as killed."""
        import torch.distributed as dist

        if self.world.leader and kind is None and self.store is not None:
            deadline = time.monotonic() + LEAVE_SECONDS
            while self.store.add("left", 0) < self.world.size - 1 and time.monotonic() < deadline:
                time.sleep(WAIT_SECONDS)
        if dist.is_initialized():
            dist.destroy_process_group()
        if not self.world.leader and self.store is not None:
            with contextlib.suppress(RuntimeError, OSError):  # rank 0 may be gone (interrupted)
                self.store.add("left", 1)

    # collectives: only where every rank is known to be (the start, the end)

    def gather(self, value: object) -> list[object]:
        """Every rank's `value` (picklable), in rank order, on every rank."""
        import torch.distributed as dist

        values: list[object] = [None] * self.world.size
        dist.all_gather_object(values, value)
        return values

    def total(self, summary: Summary) -> Summary:
        """The Summary of the whole job: every rank's counts summed; wall time this rank's."""
        import torch
        import torch.distributed as dist

        values = torch.tensor([float(getattr(summary, name)) for name in SUMMED], dtype=torch.float64)
        values = values.to(self.device)
        dist.all_reduce(values)
        summed = {name: value for name, value in zip(SUMMED, values.tolist(), strict=True)}
        whole = {name: v if name in ("megapixels", "seconds") else round(v) for name, v in summed.items()}
        return dataclasses.replace(summary, **whole)

    def barrier(self) -> None:
        import torch.distributed as dist

        # NCCL's barrier is told the GPU, or it guesses one (with a warning).
        dist.barrier(**({"device_ids": [self.device.index]} if self.device.type == "cuda" else {}))

    # the store: ranks 1.. post, rank 0 polls

    def post(self, outcome: Outcome) -> None:
        self.store.set(f"{self.world.rank}/{self.posted}", outcome_to_json(outcome))
        self.posted += 1
        self.store.add(f"{self.world.rank}/count", 1)  # after the record: a count never runs ahead

    def post_done(self) -> None:
        self.store.set(f"{self.world.rank}/done", str(self.posted))

    def poll(self, *, now: bool = False) -> Iterator[Outcome]:
        """Rank 0: the other ranks' outcomes posted since the last poll (none when the last poll
        was under POLL_SECONDS ago, unless `now`)."""
        if not now and time.monotonic() - self._last_poll < POLL_SECONDS:
            return
        self._last_poll = time.monotonic()
        for rank, read in self.read.items():
            count = self.store.add(f"{rank}/count", 0)  # the current value, without waiting
            for index in range(read, count):
                key = f"{rank}/{index}"
                text = self.store.get(key).decode()
                self.store.delete_key(key)
                self.read[rank] = index + 1
                yield outcome_from_json(text)

    def others_done(self) -> bool:
        """Rank 0: every other rank has finished its shard and everything it posted was read."""
        keys = [f"{rank}/done" for rank in self.read]
        if not self.store.check(keys):
            return False
        return all(int(self.store.get(f"{rank}/done")) == read for rank, read in self.read.items())

    def release(self) -> None:
        self.store.set("collected", "1")

    def wait_released(self) -> None:
        while not self.store.check(["collected"]):
            time.sleep(WAIT_SECONDS)


def run_shard(
    jobs: Sequence[Job],
    options: ConvertOptions,
    group: Group,
    *,
    dry_run: bool = False,
    in_flight: int | None = None,
    on_start: Callable[[Job], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    on_progress: Callable[[Job, float], None] | None = None,
    on_finish: Callable[[Summary], None] | None = None,
) -> Summary:
    """Convert this rank's shard of `jobs` (the whole plan, the same on every rank) as
    `batch.run_jobs` does, and return the Summary of the whole job on every rank.

    On rank 0 `on_done` is told of every rank's photos (its own as they finish, the others' as
    their messages arrive) and `on_finish` gets the job's Summary before the ranks part; on the
    other ranks the callbacks are not called. Per-photo errors are counted, never raised, on
    every rank, so one rank's bad file never stops the job."""
    world = group.world
    mine = shard(jobs, world.rank, world.size)
    start = time.perf_counter()
    if world.leader:

        def relay() -> None:
            for outcome in group.poll():
                if on_done is not None:
                    on_done(outcome)

        def done(outcome: Outcome) -> None:
            if on_done is not None:
                on_done(outcome)
            relay()

        def progress(job: Job, fraction: float) -> None:
            if on_progress is not None:
                on_progress(job, fraction)
            relay()

        def started(job: Job) -> None:
            relay()
            if on_start is not None:
                on_start(job)

        own = run_jobs(mine, options, dry_run=dry_run, on_start=started, on_done=done, on_progress=progress,
                       check=False, in_flight=in_flight)  # fmt: skip
        while True:  # the others' last photos; no collective waits here, however long they take
            finished = group.others_done()  # read before the poll: nothing posted after it is missed
            for outcome in group.poll(now=True):
                if on_done is not None:
                    on_done(outcome)
            if finished:
                break
            time.sleep(WAIT_SECONDS)
        group.release()
    else:
        own = run_jobs(mine, options, dry_run=dry_run, on_done=group.post, check=False, in_flight=in_flight)
        group.post_done()
        group.wait_released()
    summary = group.total(own)
    summary.wall_seconds = time.perf_counter() - start
    if world.leader and on_finish is not None:
        on_finish(summary)
    group.barrier()  # nobody exits (torchrun would stop the others) before rank 0 has printed
    return summary
