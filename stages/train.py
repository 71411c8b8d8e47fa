"""DVC stages teacher@<dataset>-<pair>, baseline@<dataset>-<pair>-<seed> and
baseline_same_compute@<dataset>-<pair>-<seed>: train a segmentor with mmengine's
Runner and export it as a plain mmseg checkpoint. The same-compute baseline is the
baseline student trained for profiles.<profile>.same_compute.iters iterations.

On the paper's datasets (Cityscapes, ADE20K, Pascal Context 59) the teacher is not
trained: it is the paper's mmseg model-zoo checkpoint (bpkd/weights/registry.yaml),
downloaded, verified and converted. On synthetic and CamVid it trains here.

With profiles.<profile>.train.nproc > 1 the script re-runs itself under
`python -m torch.distributed.run --standalone` (one machine); under a torchrun the
user started (several machines) it runs as one of its processes.

--dry-run prints the resolved mmengine config and exits: no training, no download,
no prepared dataset needed (--out/--log-dir may then be omitted)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--role", required=True, choices=["teacher", "baseline", "baseline_same_compute"])
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--seed", type=int, help="the baseline's seed, one of params.yaml's `baseline_seeds` (default: the "
                                        "first of `seeds`, the methods' first); "
                                        "the teacher's is profiles.<profile>.train.randomness.seed")
ap.add_argument("--out", help="exported checkpoint (.pth)")
ap.add_argument("--log-dir", help="DVCLive folder for step logs")
ap.add_argument("--cost", help="where to write the run's wall time, step time, steps and host (.json)")
ap.add_argument("--dry-run", action="store_true", help="print the resolved config; train nothing")
args = ap.parse_args()
if not args.dry_run and not (args.out and args.log_dir):
    ap.error("--out and --log-dir are required (except with --dry-run)")
if args.role == "teacher" and args.seed is not None:
    ap.error("--seed is the baseline's: the teacher trains once, with profiles.<profile>.train.randomness.seed")


def main():
    from bpkd import layout, params
    from bpkd.models.pairs import arch_of
    from bpkd.training.launch import relaunch
    from bpkd.training.run import run_config, train_and_export

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    role = "teacher" if args.role == "teacher" else "student"
    seeds_key = "same_compute_seed" if args.role == "baseline_same_compute" else "baseline_seed"
    seed = None if role == "teacher" else p.check(seeds_key, p.seeds[0] if args.seed is None else args.seed)
    from bpkd.weights import registry

    # The paper's datasets download the teacher it released; synthetic and CamVid train theirs.
    downloaded = args.role == "teacher" and dataset in registry.DATASETS
    if downloaded:

        entry = registry.teacher(dataset, pair)
        if args.dry_run:
            print(f"# teacher@{dataset}-{pair} does not train on {dataset}: it downloads {entry.url}\n"
                  f"# (sha256 {entry.sha256}), converts it to {arch_of(pair, role)} and exports it.\n"
                  f"# Below: the config that would train it here, from profiles.{p.profile}.teacher.")
        else:
            from bpkd.atomic import write_json
            from bpkd.datasets import specs
            from bpkd.weights.resolve import teacher_checkpoint

            teacher_checkpoint(dataset, pair, out=args.out, num_classes=specs.get(dataset).num_classes)
            write_json(f"{args.log_dir}/source.json", dict(url=entry.url, sha256=entry.sha256))
            return
    # Resolved before relaunching: a missing prepared dataset fails once, and the
    # ImageNet backbone is downloaded once, not by every process.
    cfg = run_config(p, dataset, pair, args.role, work_dir=layout.work_dir(dataset, pair, args.role, seed),
                     log_dir=args.log_dir or layout.train_log(dataset, pair, args.role, seed), dry_run=args.dry_run,
                     seed=seed)
    if args.dry_run:
        from bpkd.training.run import describe

        print(describe(cfg, p.train[role].nproc))
        return
    relaunch(p.train[role].nproc, f"profiles.{p.profile}.train.nproc")
    train_and_export(cfg, args.out, meta=dict(dataset=dataset, pair=pair, role=args.role, arch=arch_of(pair, role)),
                     cost=args.cost)


cli.run(main)
