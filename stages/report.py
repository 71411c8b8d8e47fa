"""DVC stage report: regenerate the results tables (one per dataset, the seed
README's layout, plus each method's gains) from the metrics files, and refresh
README.md's results block with them."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--metrics", default="metrics", help="metrics folder to read")
ap.add_argument("--out", required=True, help="tables (.md)")
ap.add_argument("--readme", help="also refresh the block between the results markers of this README")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.atomic import write_text
    from bpkd.report.readme_block import refresh
    from bpkd.report.tables import render

    p = params.load()
    write_text(args.out, render(args.metrics, p.datasets, p.pairs, p.methods))
    if args.readme:
        refresh(args.readme, render(args.metrics, p.datasets, p.pairs, p.methods, level=3))
    print(open(args.out).read())


cli.run(main)
