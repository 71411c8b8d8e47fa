"""DVC stage complexity@<dataset>: FLOPs(G) and Parameters(M) of the teacher and
student of every pair in params.yaml, with mmengine's complexity analysis (the
convention is in bpkd.models.complexity)."""
from bpkd import cli

ap = cli.parser(__doc__)
ap.add_argument("--dataset", required=True)
ap.add_argument("--out", required=True, help="complexity rows (.json)")
args = ap.parse_args()


def main():
    from bpkd import params
    from bpkd.atomic import write_json
    from bpkd.datasets.specs import get
    from bpkd.models.complexity import complexity
    from bpkd.models.pairs import PAIRS

    p = params.load()
    spec = get(p.check("dataset", args.dataset))
    archs = dict.fromkeys(a for pair in p.pairs for a in (PAIRS[pair].teacher, PAIRS[pair].student))
    write_json(args.out, [complexity(a, spec.num_classes) for a in archs])


cli.run(main)
