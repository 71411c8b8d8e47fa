"""DVC stage report: regenerate the results tables (one per dataset, the seed
README's layout, plus each method's gains, on a real dataset the paper's reported
numbers beside the measured ones, and with several seeds their spread, the
baseline's seed std beside each gain) from the metrics files, render the key
figures of the plots page as static PNGs (val mIoU curves, per-class IoU, the
qualitative grid), and refresh README.md's results block with both; README's tables
come from the committed several-seed studies (--study, bpkd.report.summary) when the
first made on this profile is there, the others beside it."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--metrics", default="metrics", help="metrics folder to read")
ap.add_argument("--out", required=True, help="tables (.md)")
ap.add_argument("--readme", help="also refresh the block between the results markers of this README")
ap.add_argument("--charts", default="metrics/charts", help="tables of charts@<dataset>-<pair>")
ap.add_argument("--qualitative", default="data/qualitative", help="grids of qualitative@<dataset>-<pair>")
ap.add_argument("--templates", default=".dvc/plots", help="DVC plot templates the page uses")
ap.add_argument("--figures", help="write the static figures into this folder (<dataset>/<pair>/*.png)")
ap.add_argument("--study", action="append", default=[],
                help="a several-seed study's snapshot (python -m bpkd.study render <study>), repeatable: README's "
                     "results come from them when one was made on this profile and datasets, the others shown beside it")
args = ap.parse_args()


def main():
    from pathlib import Path

    from bpkd import params
    from bpkd.atomic import atomic_path, write_text
    from bpkd.report import figures, study_results, summary
    from bpkd.report.readme_block import refresh
    from bpkd.report.tables import DATASET_TITLES, render

    p = params.load()
    seeds = dict(seeds=p.seeds, released=p.released, baseline_seeds=p.baseline_seeds,
                 same_compute_seeds=p.same_compute_seeds)
    write_text(args.out, render(args.metrics, p.datasets, p.pairs, p.methods, **seeds))
    shown = []
    if args.figures:
        with atomic_path(args.figures, is_dir=True) as tmp:
            for dataset in p.datasets:
                for pair in p.pairs:
                    names = figures.render(charts_dir=Path(args.charts, dataset, pair),
                                           qualitative=Path(args.qualitative, dataset, f"{pair}.png"),
                                           templates_dir=Path(args.templates), out_dir=tmp / dataset / pair,
                                           dataset=dataset, pair=pair)
                    if names:
                        shown.append((dataset, pair, names))
    if args.readme:
        own = next((s for s in (study_results.load(f, p.profile, p.datasets) for f in args.study) if s), None)
        if own is None:
            block = render(args.metrics, p.datasets, p.pairs, p.methods, level=3, title="This run's tables", **seeds)
        else:
            others = [s for f in args.study for s in [study_results.load(f)] if s and s.folder != own.folder]
            block = summary.readme_block([own, *others])
        if shown:
            block += "\n#### Figures\n\nThe key charts of `dvc plots show`, rendered offline to PNG by the same stage.\n"
            for dataset, pair, names in shown:
                block += (f"\n{DATASET_TITLES.get(dataset, dataset)}, `{pair}`:\n\n"
                          + figures.markdown(args.figures, dataset, pair, names) + "\n")
        refresh(args.readme, block)
    print(open(args.out).read())
    for dataset, pair, names in shown:
        print(f"{args.figures}/{dataset}/{pair}: {', '.join(names)}")


cli.run(main)
