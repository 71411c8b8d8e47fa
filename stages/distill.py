"""DVC stage distill@<dataset>-<pair>-<method>: train the student with the frozen
teacher and one distillation method; export the student alone."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--method", required=True)
ap.add_argument("--method-params", required=True, help="resolved params from method@<method> (.json)")
ap.add_argument("--teacher", required=True, help="teacher checkpoint (.pth)")
ap.add_argument("--out", required=True, help="exported student checkpoint (.pth)")
ap.add_argument("--log-dir", required=True, help="DVCLive folder for step logs")
args = ap.parse_args()


def main():
    import json

    from bpkd import params
    from bpkd.models.pairs import arch_of
    from bpkd.training.run import distill_config, train_and_export

    p = params.load()
    dataset, pair, method = p.check("dataset", args.dataset), p.check("pair", args.pair), p.check("method", args.method)
    with open(args.method_params) as f:
        method_params = json.load(f)["params"]
    cfg = distill_config(p, dataset, pair, method, method_params, args.teacher,
                         work_dir=f"data/work/{dataset}/{pair}/{method}", log_dir=args.log_dir)
    train_and_export(cfg, args.out, meta=dict(dataset=dataset, pair=pair, role=method, arch=arch_of(pair, "student")))


cli.run(main)
