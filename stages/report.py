"""DVC stage report: regenerate the results tables (one per dataset, the seed
README's layout) from the metrics files."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--metrics", default="metrics", help="metrics folder to read")
ap.add_argument("--out", required=True, help="tables (.md)")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.atomic import write_text
    from bpkd.report.tables import render

    p = params.load()
    write_text(args.out, render(args.metrics, p.datasets, p.pairs, p.methods))
    print(open(args.out).read())


cli.run(main)
