"""DVC stage curves@<dataset>-<pair>: the step logs of teacher, baseline and every
distilled student merged into one table per term, so `dvc plots show` overlays the
runs (loss terms, val mIoU) in one chart each."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--pair", required=True)
ap.add_argument("--out", required=True, help="folder of <term>.tsv tables")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.atomic import atomic_path
    from bpkd.report import curves

    p = params.load()
    dataset, pair = p.check("dataset", args.dataset), p.check("pair", args.pair)
    merged = curves.collect(f"metrics/{dataset}/{pair}/train", list(p.models))
    with atomic_path(args.out, is_dir=True) as tmp:
        curves.write(merged, tmp)
    print(f"{args.out}: {', '.join(sorted(merged))} ({len(p.models)} runs)")


cli.run(main)
