"""DVC stage prepare@<dataset>: write the dataset in mmseg's layout.

synthetic: generated here (deterministic, no download); real datasets: converted
from the raw download placed by hand under --raw (see README)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--out", required=True, help="output folder (data/prepared/<dataset>)")
ap.add_argument("--raw", help="raw download of a real dataset (default: params' data.<dataset>.raw_dir, "
                              "else data/raw/<dataset>); ignored for synthetic")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.datasets.prepare import prepare

    p = params.load()
    prepare(p, p.check("dataset", args.dataset), args.out, raw=args.raw)


cli.run(main)
