"""DVC stages teacher@<dataset>-<pair> and baseline@<dataset>-<pair>: train a
segmentor with mmengine's Runner and export it as a plain mmseg checkpoint.

On a real dataset the teacher is not trained: it is the paper's mmseg model-zoo
checkpoint (bpkd/weights/registry.yaml), downloaded, verified and converted."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--role", required=True, choices=["teacher", "baseline"])
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--out", required=True, help="exported checkpoint (.pth)")
ap.add_argument("--log-dir", required=True, help="DVCLive folder for step logs")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.models.pairs import arch_of
    from bpkd.training.run import run_config, train_and_export

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    role = "teacher" if args.role == "teacher" else "student"
    if args.role == "teacher" and dataset != "synthetic":
        from bpkd.atomic import write_json
        from bpkd.datasets import specs
        from bpkd.weights import registry
        from bpkd.weights.resolve import teacher_checkpoint

        teacher_checkpoint(dataset, pair, out=args.out, num_classes=specs.get(dataset).num_classes)
        entry = registry.teacher(dataset, pair)
        write_json(f"{args.log_dir}/source.json", dict(url=entry.url, sha256=entry.sha256))
        return
    cfg = run_config(p, dataset, pair, args.role, work_dir=f"data/work/{dataset}/{pair}/{args.role}",
                     log_dir=args.log_dir)
    train_and_export(cfg, args.out, meta=dict(dataset=dataset, pair=pair, role=args.role, arch=arch_of(pair, role)))


cli.run(main)
