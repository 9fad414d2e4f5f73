"""Per-job GPU assignment: a pool of lock files, so concurrent GPU jobs on one box land on distinct GPUs.

Snakemake's `gpu` resource caps how many GPUs the running jobs use together (`--resources gpu=4`), but it
does not say which GPU each job gets: without help every job would run on GPU 0. Every GPU rule therefore
runs its command through

    python -m glueslim.gpus --gpus N [--distributed] -- python -m glueslim finetune ...

which takes N free devices from the pool, sets CUDA_VISIBLE_DEVICES to them and replaces itself with the
command (exec). The command inherits the locked files, so a device stays taken exactly as long as the job
runs: the kernel drops a `flock` lock when the last process holding it exits, however it exits (a crash or
`kill -9` included), so a dead job never leaves a device marked busy. A job that finds fewer than N free
devices waits for them. With `--distributed` and N > 1 the command, which must be `python -m MODULE ...`,
is started by `torch.distributed.run --standalone` with one process per device (data-parallel training
through accelerate; `--standalone` picks a free rendezvous port, so several such jobs can share a box).
N = 0 runs the command as it is.

The pool is the devices in CUDA_VISIBLE_DEVICES when it is set (a SLURM allocation, or the GPUs a user
set aside), else every GPU that `nvidia-smi -L` lists (else torch's device count). Lock files live in
$GLUESLIM_GPU_LOCK_DIR (default: <system temp>/glueslim-gpus), shared by every workflow on the box; inside
a SLURM job they go to a sub-folder per SLURM job id, because SLURM renumbers each job's GPUs from 0 and
jobs of different allocations on one node must not wait for each other's "GPU 0". Only the standard
library is imported here (no torch), so the wrapper costs milliseconds.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCK_DIR_ENV = "GLUESLIM_GPU_LOCK_DIR"
_DEVICE_RE = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z-]+)$")


class GpuError(Exception):
    """A job asks for more GPUs than the box has, or the pool cannot be used."""


def _log(msg: str) -> None:
    print(f"glueslim.gpus: {msg}", file=sys.stderr, flush=True)


def parse_visible_devices(value: str) -> list[str]:
    """The devices a CUDA_VISIBLE_DEVICES value names, as CUDA reads it: up to the first invalid entry.

    "0,1" -> ["0", "1"]; "" or "-1" (hide every GPU) -> []; GPU-/MIG- UUIDs are kept as they are.
    """
    out = []
    for entry in (e.strip() for e in value.split(",")):
        if not _DEVICE_RE.match(entry):
            break
        out.append(entry)
    return out


def count_gpus() -> int:
    """GPUs on this box: the `GPU n:` lines of `nvidia-smi -L`, else torch.cuda.device_count(), else 0."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=True).stdout
            return sum(1 for line in out.splitlines() if re.match(r"^GPU \d+:", line))
        except (OSError, subprocess.SubprocessError) as e:
            _log(f"nvidia-smi -L failed ({e}); asking torch instead")
    try:
        import torch  # slow to import: only when nvidia-smi cannot tell

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch or no driver: no GPUs
        return 0


def pool_devices(env: dict | None = None) -> list[str]:
    """The devices jobs are assigned from (see the module docstring)."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_visible_devices(env["CUDA_VISIBLE_DEVICES"])
    return [str(i) for i in range(count_gpus())]


def lock_dir(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    base = Path(env.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "glueslim-gpus")
    return base / f"slurm-{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else base


def _open_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: flock works on a read-only descriptor too
        fd = os.open(path, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o666)  # let other users of the box lock it too (best effort)
    except OSError:
        pass
    return fd


def _make_dir(path: Path) -> None:
    """Create the lock folder; the folders created here are shared by every user of the box, like /tmp."""
    new = [d for d in (path, path.parent) if not d.exists() and (d == path or path.name.startswith("slurm-"))]
    path.mkdir(parents=True, exist_ok=True)
    for d in new:
        try:
            os.chmod(d, 0o1777)
        except OSError:  # made by another job in the meantime
            pass


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


def _device_file(device: str) -> str:
    return "gpu-" + re.sub(r"[^0-9A-Za-z_-]", "_", device) + ".lock"


class Slots:
    """Devices taken from the pool: `devices` and the open, locked descriptors that hold them."""

    def __init__(self, devices: list[str], fds: list[int]):
        self.devices, self.fds = devices, fds


def try_acquire(n: int, devices: list[str], directory: Path) -> tuple[Slots | None, dict[str, str]]:
    """Lock n free devices at once, or none: (slots, {}) or (None, {busy device: holder})."""
    _make_dir(directory)
    guard = _open_lock(directory / "pool.lock")
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one job scans at a time: no two jobs each holding half of what they need
        got_dev, got_fd, busy = [], [], {}
        for dev in devices:
            if len(got_dev) == n:
                break
            fd = _open_lock(directory / _device_file(dev))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy[dev] = _holder(fd)
                os.close(fd)
                continue
            got_dev.append(dev)
            got_fd.append(fd)
        if len(got_dev) < n:
            for fd in got_fd:
                os.close(fd)
            return None, busy
        for fd in got_fd:  # who holds it, for the messages of jobs that wait (not on a read-only descriptor)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
            except OSError:
                pass
        return Slots(got_dev, got_fd), {}
    finally:
        os.close(guard)


def acquire(n: int, devices: list[str] | None = None, directory: Path | None = None,
            poll: float = 2.0, timeout: float | None = None) -> Slots:
    """Wait until n devices of the pool are free and lock them."""
    devices = pool_devices() if devices is None else devices
    directory = lock_dir() if directory is None else directory
    if n > len(devices):
        where = (f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r}" if "CUDA_VISIBLE_DEVICES" in os.environ
                 else "nvidia-smi -L")
        raise GpuError(f"the job asks for {n} GPU(s) but this machine has {len(devices)} ({where}); "
                       "lower gpu.train_gpus, or run on CPU with device: cpu")
    start, told = time.monotonic(), False
    while True:
        slots, busy = try_acquire(n, devices, directory)
        if slots is not None:
            return slots
        if timeout is not None and time.monotonic() - start > timeout:
            raise GpuError(f"no {n} free GPU(s) after {timeout:.0f} s; busy: {busy}")
        if not told:
            _log(f"waiting for {n} free GPU(s) of {devices}; busy: "
                 + ", ".join(f"{d} ({h})" for d, h in busy.items()) + f"; lock files in {directory}")
            told = True
        time.sleep(poll * (0.5 + random.random()))


def distributed_command(cmd: list[str], nproc: int) -> list[str]:
    """`python -m MODULE ARGS` -> `python -m torch.distributed.run --standalone --nproc-per-node N -m MODULE ARGS`."""
    if len(cmd) < 3 or cmd[1] != "-m":
        raise GpuError(f"--distributed needs a command of the form 'python -m MODULE ...', not {cmd[:3]}")
    return [cmd[0], "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", *cmd[2:]]


def plan(n: int, distributed: bool, cmd: list[str], env: dict, slots: Slots | None) -> tuple[list[str], dict]:
    """The command and environment to exec for a job that was given `slots`."""
    env = dict(env)
    if slots is None:
        return cmd, env
    env["CUDA_VISIBLE_DEVICES"] = ",".join(slots.devices)
    env["CUDA_DEVICE_ORDER"] = env.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # the numbering nvidia-smi shows
    if distributed and n > 1:
        env.setdefault("OMP_NUM_THREADS", "1")  # each process sets its share of the job's threads itself
        return distributed_command(cmd, n), env
    return cmd, env


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m glueslim.gpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpus", type=int, required=True, help="devices the job needs (0: run the command as it is)")
    p.add_argument("--distributed", action="store_true",
                   help="with more than one GPU, run one process per GPU (torch.distributed.run)")
    p.add_argument("--timeout", type=float, default=None, help="give up after waiting this many seconds")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks at the pool")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("no command given (put it after --)")
    if args.gpus < 0:
        p.error("--gpus must be at least 0")
    slots = None
    try:
        if args.gpus > 0:
            slots = acquire(args.gpus, poll=args.poll, timeout=args.timeout)
            for fd in slots.fds:
                os.set_inheritable(fd, True)  # the command holds the locks from now on
        cmd, env = plan(args.gpus, args.distributed, cmd, os.environ, slots)
    except GpuError as e:
        _log(f"error: {e}")
        sys.exit(2)
    if slots is not None:
        _log(f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} (lock files in {lock_dir()})")
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
