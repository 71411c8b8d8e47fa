"""DVC stage distill@<dataset>-<pair>-<method>: train the student with the frozen
teacher and one distillation method; export the student alone.

Several processes and --dry-run: as stages/train.py (`--help` there)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--method", required=True)
ap.add_argument("--method-params", help="resolved params from method@<method> (.json); with --dry-run, "
                                        "default: the method's params group resolved from params.yaml")
ap.add_argument("--seed", type=int, help="the student's seed, one of params.yaml's `seeds` (default: the first)")
ap.add_argument("--teacher", help="teacher checkpoint (.pth)")
ap.add_argument("--out", help="exported student checkpoint (.pth)")
ap.add_argument("--log-dir", help="DVCLive folder for step logs")
ap.add_argument("--cost", help="where to write the run's wall time, step time, steps and host (.json)")
ap.add_argument("--dry-run", action="store_true", help="print the resolved config; train nothing")
args = ap.parse_args()
if not args.dry_run and not (args.method_params and args.teacher and args.out and args.log_dir):
    ap.error("--method-params, --teacher, --out and --log-dir are required (except with --dry-run)")


def main():
    import json

    from bpkd import layout, params
    from bpkd.models.pairs import arch_of
    from bpkd.training.launch import relaunch
    from bpkd.training.run import distill_config, train_and_export

    p = params.load()
    dataset, pair, method = p.check("dataset", args.dataset), p.check("pair", args.pair), p.check("method", args.method)
    if args.method_params:
        with open(args.method_params) as f:
            method_params = json.load(f)["params"]
    else:  # dry run: what method@<method> would write
        import tempfile

        from bpkd.distill.method_config import resolve

        with tempfile.TemporaryDirectory() as tmp:
            method_params = resolve(p, method, f"{tmp}/m.json")
    seed = p.check("seed", p.seeds[0] if args.seed is None else args.seed)
    teacher = args.teacher or layout.checkpoint(dataset, pair, "teacher")
    work_dir = layout.work_dir(dataset, pair, method, seed)
    log_dir = args.log_dir or layout.train_log(dataset, pair, method, seed)
    # Resolved before relaunching (as in stages/train.py): errors and downloads happen once.
    cfg = distill_config(p, dataset, pair, method, method_params, teacher, work_dir=work_dir, log_dir=log_dir,
                         dry_run=args.dry_run, seed=seed)
    # The loss terms' gradient balance (bpkd.distill.term_balance), every `interval` steps.
    cfg.model.balance_interval = p.term_balance_interval()
    if args.dry_run:
        from bpkd.training.run import describe

        print(describe(cfg, p.train["student"].nproc))
        return
    relaunch(p.train["student"].nproc, f"profiles.{p.profile}.train.nproc")
    train_and_export(cfg, args.out, meta=dict(dataset=dataset, pair=pair, role=method, arch=arch_of(pair, "student")),
                     cost=args.cost)


cli.run(main)
