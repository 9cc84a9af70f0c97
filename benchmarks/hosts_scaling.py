"""Scaling across processes: `tfseg train` as 1 process against N processes
(`--hosts N`) on this machine, images per second and time in collectives.

    python3 -m tfseg export-data --data-dir ../shared/data/oxford_iiit_pet \\
        --image-size 64 --split train test --val-fraction 0 --out pets64.npz
    python3 benchmarks/hosts_scaling.py --data-npz pets64.npz --image-size 64 \\
        [--processes 2] [--batch-size 8] [--epochs 4] [--rounds 2] \\
        [--device cpu|gpu] [--out DIR]

Each configuration is a real training run on the JAX backend: every process
runs `tfseg.cli.main(["train", ...])` (what `python3 -m tfseg train` runs)
with `--hosts N --host-index I --coordinator 127.0.0.1:PORT`, the same
`--batch-size` per process (so the global batch grows with N), on the same
data. `--device cpu` gives each process one core (`sched_setaffinity`) and
keeps XLA's CPU code on one thread (`--xla_cpu_multi_thread_eigen=false`),
so 1 process is 1 core and N processes are N cores; `--device gpu` gives each
process one GPU (`CUDA_VISIBLE_DEVICES`): the check for a host with several.

Speed: host 0's `epoch_seconds` (history.csv) of the steady epochs (the
first compiles and is left out); images per epoch are the steps times the
global batch. The configurations take turns, round after round (1, N, then
N, 1, ...), so a busy stretch of a shared machine falls on both; the ratios
are from the same call. Export without a validation split (as above):
validation is served whole on every host, so it would not scale and would
be counted in `epoch_seconds`.

Time in collectives: XLA's dump of the compiled train step
(`--xla_dump_to`, that module only) lists the all-reduces it runs: the
gradients (XLA combines them into one) and the batch-norm statistics and
metrics (small, many). After training, in the same processes, the same
all-reduces (shapes, order, each waiting for the one before) are replayed
in one jitted function over the same devices and runtime (gloo on the CPU,
NCCL on GPUs), timed after warm-up, median of `--repeats` calls. This is
the collectives' own cost, without the computation around them and without
the time a process waits for a slower peer; the step time of N processes
less that of 1 process (the same batch per process) bounds all that the
distribution costs, waits included. With `--device cpu` the replay runs
once more with every thread of the processes free on all the cores: gloo's
threads then no longer share one core with the main thread.

Writes `results.json` (every epoch time, the all-reduces, load averages),
the runs and each process's log under `--out`; prints a Markdown table last.
"""

import argparse
import csv
import glob
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One all-reduce in XLA's HLO text: its result type, its operands.
ALL_REDUCE = re.compile(r"=\s*(\(.*?\)|\S+)\s+all-reduce(?:-start)?\(")
ARRAY_TYPE = re.compile(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]")
# The cores the benchmark may use, for a pinned process's unpinned replay.
CORES = "HOSTS_SCALING_CORES"
UNPINNED = "collectives_unpinned_s"
DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "s32": "int32"}


def free_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


# --- in each training process ----------------------------------------------


def all_reduces(dump_dir):
    """`[[(dtype, shape), ...], ...]`: the all-reduces of the compiled train
    step that XLA dumped in `dump_dir`, in program order (one list of
    operands per all-reduce)."""
    files = [
        path
        for path in glob.glob(os.path.join(dump_dir, "*train_step*after_optim*.txt"))
        if "buffer-assignment" not in path
    ]
    found = []
    for path in files:
        with open(path) as file:
            text = file.read()
        ops = []
        for match in ALL_REDUCE.finditer(text):
            ops.append(
                [
                    (
                        DTYPES.get(kind, "float32"),
                        [int(d) for d in dims.split(",") if d],
                    )
                    for kind, dims in ARRAY_TYPE.findall(match.group(1))
                ]
            )
        found.append(ops)
    return max(found, key=len, default=[])


def replay(ops, repeats):
    """Median, min seconds of one call that runs `ops` (the all-reduces of a
    train step) in order across every process's devices; and the number of
    all-reduces in the compiled replay (XLA must not merge them)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec

    devices = np.array(jax.devices())
    mesh = Mesh(devices, ("d",))
    sharding = NamedSharding(mesh, PartitionSpec("d"))
    # Each device holds one block of every operand: (1, *shape) of (N, *shape).
    arguments = [
        [
            jax.make_array_from_callback(
                (len(devices), *shape),
                sharding,
                lambda where, s=shape, t=dtype: np.ones((1, *s), t),
            )
            for dtype, shape in op
        ]
        for op in ops
    ]

    def body(arguments):
        # Each all-reduce waits for the one before (a data dependence, or XLA
        # would merge them into one): its smallest operand adds 0 times a
        # value of the previous result. Every result is used.
        total = jnp.zeros((), jnp.float32)
        for number, operands in enumerate(arguments):
            operands = list(operands)
            if number:
                low = min(range(len(operands)), key=lambda i: operands[i].size)
                operands[low] = operands[low] + (0 * total).astype(operands[low].dtype)
            for result in jax.lax.psum(operands, "d"):
                total = total + result.ravel()[0].astype(jnp.float32)
        return total[None]

    spec = PartitionSpec("d")
    function = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(spec,), out_specs=spec))
    compiled = function.lower(arguments).compile().as_text()
    count = len(ALL_REDUCE.findall(compiled))
    for _ in range(3):  # warm-up
        function(arguments).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(arguments).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), count


def size(op):
    """Elements of one all-reduce's operands."""
    return sum(math.prod(shape) for _, shape in op)


def worker(argv):
    """`--worker RESULT.json DUMP_DIR REPEATS TRAIN_FLAGS...`: trains, then
    (with several hosts) replays the train step's all-reduces."""
    result_path, dump_dir, repeats, *flags = argv
    sys.path.insert(0, ROOT)
    from tfseg.cli import main as cli_main

    code = cli_main(["train", *flags])
    result = {"exit_code": code, "tensorflow_imported": "tensorflow" in sys.modules}
    if code == 0 and int(flags[flags.index("--hosts") + 1]) > 1:
        ops = all_reduces(dump_dir)
        median, best, count = replay(ops, int(repeats))
        gradients = max(ops, key=size)  # XLA's combined gradient all-reduce
        result.update(
            gradients_s=replay([gradients], int(repeats))[0],
            gradient_arrays=len(gradients),
            all_reduces=len(ops),
            replayed_all_reduces=count,
            elements=sum(map(size, ops)),
            largest=max(map(size, ops)),
            collectives_s=median,
            collectives_best_s=best,
        )
        if os.environ.get(CORES):  # pinned: again with every thread on all cores
            cores = {int(core) for core in os.environ[CORES].split(",")}
            for thread in os.listdir("/proc/self/task"):
                try:
                    os.sched_setaffinity(int(thread), cores)
                except OSError:  # a thread that ended meanwhile
                    pass
            result[UNPINNED] = replay(ops, int(repeats))[0]
    for path in glob.glob(os.path.join(dump_dir, "*")):  # keep the HLO text
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif not path.endswith("after_optimizations.txt"):
            os.remove(path)
    with open(result_path, "w") as file:
        json.dump(result, file)
    return code


# --- the benchmark ---------------------------------------------------------


def launch(count, run_name, args, round_dir):
    """Starts the `count` processes of one training run; returns them."""
    address = free_address()
    flags = ["--data-npz", args.data_npz, "--image-size", str(args.image_size)]
    flags += ["--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
    flags += ["--output-dir", os.path.join(args.out, "runs"), "--run-name", run_name]
    if args.max_examples:
        flags += ["--max-examples", str(args.max_examples)]
    flags += args.train_args.split()
    flags += ["--hosts", str(count), "--coordinator", address]
    cores = sorted(os.sched_getaffinity(0))
    processes = []
    for index in range(count):
        dump = os.path.join(args.out, "hlo", f"{count}_processes_host{index}")
        env = dict(
            os.environ,
            KERAS_BACKEND="jax",
            PYTHONUNBUFFERED="1",
            JAX_COMPILATION_CACHE_DIR=os.path.join(args.out, "jax_cache"),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        )
        xla = [f"--xla_dump_to={dump}", "--xla_dump_hlo_module_re=.*train_step.*"]
        pin = None
        if args.device == "cpu":
            xla.insert(0, "--xla_cpu_multi_thread_eigen=false")
            env["JAX_PLATFORMS"] = "cpu"
            pin = {cores[index]}
            env[CORES] = ",".join(map(str, cores))
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(index)
        env["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *xla]).strip()
        log = os.path.join(round_dir, f"{run_name}_host{index}.log")
        result = os.path.join(round_dir, f"{run_name}_host{index}.json")
        command = [sys.executable, os.path.abspath(__file__), "--worker", result]
        command += [dump, str(args.repeats), *flags, "--host-index", str(index)]
        with open(log, "w") as output:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda core=pin: os.sched_setaffinity(0, core))
                if pin
                else None,
            )
        process.log, process.result, process.core = log, result, pin
        process.xla_flags = env["XLA_FLAGS"]
        processes.append(process)
    return processes


def finish(processes, timeout):
    """Waits for every process (at most `timeout` s in all); kills them all
    and raises with the log's tail if one fails."""
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            code = process.wait(timeout=max(deadline - time.monotonic(), 1))
            if code != 0:
                with open(process.log) as log:
                    tail = log.read()[-3000:]
                raise RuntimeError(f"{process.log} exited {code}:\n{tail}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def read_run(run_dir, processes):
    """The run's epoch times, steps and images per epoch, and the hosts'
    collective measurements."""
    with open(os.path.join(run_dir, "config.json")) as file:
        record = json.load(file)
    with open(os.path.join(run_dir, "history.csv")) as file:
        epoch_s = [float(row["epoch_seconds"]) for row in csv.DictReader(file)]
    global_batch = record["global_batch_size"]
    steps = max(record["examples"]["train"] // global_batch, 1)
    hosts = []
    for process in processes:
        with open(process.result) as file:
            hosts.append(json.load(file))
    return {
        "hosts": record["hosts"],
        "replicas": record["replicas"],
        "global_batch": global_batch,
        "steps": steps,
        "images_per_epoch": steps * global_batch,
        "epoch_s": epoch_s,
        "processes": hosts,
        "cores": [sorted(p.core) if p.core else None for p in processes],
        "xla_flags": processes[0].xla_flags,
    }


def speed(run):
    """Images/s of one run's median steady epoch."""
    return run["images_per_epoch"] / statistics.median(run["epoch_s"][1:])


def summarise(runs):
    """One configuration's runs (one a round) in one row."""
    steady = [s for run in runs for s in run["epoch_s"][1:]]
    first = runs[0]
    step_s = statistics.median(steady) / first["steps"]
    row = {
        "processes": first["hosts"],
        "global_batch": first["global_batch"],
        "steps_per_epoch": first["steps"],
        "steady_epochs": len(steady),
        "images_per_s": first["images_per_epoch"] / statistics.median(steady),
        "best_images_per_s": first["images_per_epoch"] / min(steady),
        "step_s": step_s,
        "first_epoch_s": [run["epoch_s"][0] for run in runs],
    }
    measured = [p for run in runs for p in run["processes"] if "collectives_s" in p]
    if measured:
        row["collectives_s"] = statistics.median(p["collectives_s"] for p in measured)
        row["gradients_s"] = statistics.median(p["gradients_s"] for p in measured)
        row["gradient_arrays"] = measured[0]["gradient_arrays"]
        unpinned = [p[UNPINNED] for p in measured if UNPINNED in p]
        if unpinned:
            row["collectives_unpinned_s"] = statistics.median(unpinned)
        row["all_reduces"] = measured[0]["all_reduces"]
        row["replayed_all_reduces"] = measured[0]["replayed_all_reduces"]
        row["all_reduce_elements"] = measured[0]["elements"]
        row["largest_all_reduce_elements"] = measured[0]["largest"]
        row["collectives_share"] = row["collectives_s"] / step_s
    return row


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-npz", required=True, help="the export-data --out")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="per process")
    parser.add_argument("--epochs", type=int, default=3, help="per run; 1 compiles")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-examples", type=int, default=96)
    parser.add_argument(
        "--train-args",
        default="--model mobilenet_unet --alpha 0.35 --encoder-weights none",
        help="more `tfseg train` flags, the same for every configuration",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--repeats", type=int, default=8, help="collective replays")
    parser.add_argument("--timeout", type=float, default=600, help="s per run")
    parser.add_argument("--out", help="folder for results.json, runs and logs")
    args = parser.parse_args(argv)
    args.data_npz = os.path.abspath(args.data_npz)
    args.out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="hosts_scaling_"))
    if args.device == "cpu" and args.processes > len(os.sched_getaffinity(0)):
        parser.error(f"--processes {args.processes} needs as many cores")
    counts = [1, args.processes]
    runs = {count: [] for count in counts}
    loads = [os.getloadavg()]
    started = time.perf_counter()
    for number in range(args.rounds):
        round_dir = os.path.join(args.out, f"round{number}")
        os.makedirs(round_dir, exist_ok=True)
        for count in counts if number % 2 == 0 else counts[::-1]:
            name = f"round{number}_{count}"
            processes = launch(count, name, args, round_dir)
            finish(processes, args.timeout)
            run = read_run(os.path.join(args.out, "runs", name), processes)
            run["load_after"] = os.getloadavg()
            loads.append(run["load_after"])
            runs[count].append(run)
            print(
                f"round {number}, {count} process(es): epochs "
                + ", ".join(f"{s:.2f}" for s in run["epoch_s"])
                + f" s; load {run['load_after'][0]:.2f}",
                flush=True,
            )
    rows = [summarise(runs[count]) for count in counts]
    alone = rows[0]
    for row in rows:
        row["scaling_efficiency"] = row["images_per_s"] / (
            row["processes"] * alone["images_per_s"]
        )
        row["step_s_over_1_process"] = row["step_s"] - alone["step_s"]
    # Each round's ratio, from its own runs.
    per_round = [
        speed(many) / (args.processes * speed(one))
        for one, many in zip(runs[1], runs[args.processes])
    ]
    results = {
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("timeout", "repeats")
        }
        | {"repeats": args.repeats},
        "load_averages": loads,
        "wall_s": time.perf_counter() - started,
        "rows": rows,
        "scaling_efficiency_per_round": per_round,
        "runs": {str(count): runs[count] for count in counts},
    }
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    unit = "1 core" if args.device == "cpu" else "1 GPU"
    print(
        f"\n{args.out}: wall {results['wall_s']:.0f} s; load average (1 min) "
        + ", ".join(f"{load[0]:.2f}" for load in loads)
        + "; efficiency per round "
        + ", ".join(f"{ratio:.2f}" for ratio in per_round)
    )
    for row in rows[1:]:
        if "collectives_s" in row:
            print(
                f"{row['processes']} processes: {row['all_reduces']} all-reduces "
                f"per step ({row['all_reduce_elements']:,} elements) replayed in "
                f"{1000 * row['collectives_s']:.1f} ms, of which the gradients "
                f"({row['gradient_arrays']} arrays, "
                f"{row['largest_all_reduce_elements']:,} elements) "
                f"{1000 * row['gradients_s']:.1f} ms; step time over 1 process "
                f"{1000 * row['step_s_over_1_process']:.0f} ms"
            )
            if "collectives_unpinned_s" in row:
                print(
                    "the same replay with every thread free on all cores: "
                    f"{1000 * row['collectives_unpinned_s']:.1f} ms"
                )
    print(
        "\n| configuration | processes | global batch | steady images/s | "
        "step ms | scaling efficiency | collectives ms/step | share of step |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        count = row["processes"]
        name = f"{count} process{'es' if count > 1 else ''}, {unit}"
        name += " each" if count > 1 else ""
        collectives = share = "-"
        if "collectives_s" in row:
            collectives = (
                f"{1000 * row['collectives_s']:.1f} ({row['all_reduces']} all-reduces)"
            )
            share = f"{100 * row['collectives_share']:.0f}%"
        print(
            f"| {name} | {count} | {row['global_batch']} | "
            f"{row['images_per_s']:.1f} | {1000 * row['step_s']:.0f} | "
            f"{row['scaling_efficiency']:.2f} | {collectives} | {share} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
