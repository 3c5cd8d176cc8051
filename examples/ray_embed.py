"""Embed quarry chunk files on a Ray cluster: one Ray task per Parquet file.

The flow (docs/cluster.md):

    quarry export chunks --collection C --out chunks/        # on the quarry machine
    python examples/ray_embed.py --in chunks/ --out vectors/  # on the cluster
    quarry ingest vectors/*.parquet --collection C           # back on the quarry machine

Each task runs `quarry embed --in FILE --out DIR` on one file, so every worker needs the `quarry`
binary (``--quarry``, default ``quarry`` on the PATH) and a quarry.toml that configures the
embedder the files name (``--config``, or QUARRY_CONFIG / QUARRY_* in the workers' environment).
``quarry embed`` checks that the configured embedder computes exactly the spec the file names
and refuses otherwise. Outputs are written atomically, so a retried task (Ray's ``max_retries``)
never leaves a half file, and ``--skip-existing`` lets a rerun pick up where a failed one stopped.

``--out`` must be a folder all workers can write and the driver can read (a shared filesystem); on
object storage, copy the files in and out around the tasks (e.g. with pyarrow.fs) instead.

Without ``--address`` the script starts a Ray instance on this machine (``--local-cpus`` CPUs),
which is what the test script ``scripts/ray-embed-test.sh`` does: the tasks run in Ray worker
processes as on a cluster. (Ray's former ``ray.init(local_mode=True)``, every task in the driver,
is no longer supported by Ray 2.x.) Requires: ``pip install ray``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import ray


@ray.remote(max_retries=2)
def embed_file(quarry, config, chunk_file, out_dir, embedder, skip_existing):
    """Runs `quarry embed` on one chunk file; returns its JSON summary."""
    cmd = [quarry]
    if config:
        cmd += ["--config", config]
    cmd += ["embed", "--in", chunk_file, "--out", out_dir, "--json"]
    if embedder:
        cmd += ["--embedder", embedder]
    if skip_existing:
        cmd.append("--skip-existing")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def chunk_files(path):
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    names = sorted(n for n in os.listdir(path) if n.endswith(".parquet") and not n.startswith("."))
    return [os.path.abspath(os.path.join(path, n)) for n in names]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--in", dest="input", required=True, help="a chunk file or a folder of them")
    p.add_argument("--out", required=True, help="the folder for the vector files")
    p.add_argument("--quarry", default="quarry", help="the quarry binary on the workers")
    p.add_argument("--config", help="quarry.toml on the workers (configures the embedder)")
    p.add_argument("--embedder", help="the configured embedder name [default: the files' own]")
    p.add_argument("--skip-existing", action="store_true", help="leave files already embedded")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs a task reserves")
    p.add_argument("--address", help="the Ray cluster to join [default: start one here]")
    p.add_argument("--local-cpus", type=int, help="CPUs of the Ray instance started here")
    args = p.parse_args(argv)

    files = chunk_files(args.input)
    if not files:
        sys.exit(f"{args.input}: no .parquet chunk files")
    os.makedirs(args.out, exist_ok=True)
    out = os.path.abspath(args.out)
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.local_cpus, include_dashboard=False)
    started = time.time()
    task = embed_file.options(num_cpus=args.num_cpus)
    refs = [
        task.remote(args.quarry, args.config, f, out, args.embedder, args.skip_existing)
        for f in files
    ]
    summaries = ray.get(refs)
    embedded = sum(s["embedded"] for s in summaries)
    skipped = sum(sum(s["skipped"].values()) for s in summaries)
    seconds = time.time() - started
    print(
        json.dumps(
            {
                "files": len(files),
                "embedded": embedded,
                "skipped": skipped,
                "seconds": round(seconds, 3),
                "out": out,
            }
        )
    )


if __name__ == "__main__":
    main()
